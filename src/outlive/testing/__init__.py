"""Throwaway infrastructure for tests: a real SSH "box" you can reboot and cut off.

For outlive's own tests, for your CI, and for anyone checking the project::

    python -m outlive.testing box up --json      # {"name": "box1", "target": {...}}
    python -m outlive.testing box reboot|cut|restore|down [--name N] [--json]

or from Python: ``box = Box.up("box1")``, then ``box.target``, ``box.ssh("true")``,
``box.reboot()``, ``box.cut()``, ``box.restore()``, ``box.down()``. Needs root on Linux.

A Kubernetes v1.20 cluster with a process kubelet (``python -m outlive.testing k8s up|down|
preempt|build``): ``K8sCluster(name).up()`` returns the ``up --json`` document, then
``.preempt(run_id)``, ``.kubectl(*args)``, ``.api`` and ``.down()``.
``wait_until(check, what)`` polls a condition up to a generous deadline instead of sleeping.
"""

from __future__ import annotations

from outlive.testing._errors import TestbedError, TestbedUnavailable
from outlive.testing._poll import DEADLINE_S, wait_until
from outlive.testing.box import DEFAULT_NAME, Box, check_prerequisites, testbed_root
from outlive.testing.k8s import K8sCluster

__all__ = [
    "DEADLINE_S",
    "DEFAULT_NAME",
    "Box",
    "K8sCluster",
    "TestbedError",
    "TestbedUnavailable",
    "check_prerequisites",
    "testbed_root",
    "wait_until",
]
