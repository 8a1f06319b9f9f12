"""A real Kubernetes v1.20 control plane (etcd, apiserver, controller manager, scheduler) with the
process kubelet, started once per test module (``k8s``), always torn down. It skips, naming what
is missing, when not root or the kube binaries are not built (a failure under CI=true); while
scripts/test.sh builds them in the background, it waits for that build. The k8s tests run last
in the session, so that build overlaps the rest of the suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_project import Project

from outlive.testing import TestbedUnavailable
from outlive.testing._sessions import down_dead_sessions
from outlive.testing.k8s import K8sCluster, check_k8s_prerequisites
from outlive.testing.k8s_build import BUILD_WAIT_S


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The k8s tests last; the first of each module may wait for the binaries build (up to
    ``BUILD_WAIT_S``) before its cluster starts, so its time limit has room for that."""
    here = Path(__file__).parent
    mine = [i for i in items if here in Path(str(i.path)).parents]
    items[:] = [i for i in items if i not in mine] + mine
    seen: set[Path] = set()
    for item in mine:
        if Path(str(item.path)) not in seen:
            seen.add(Path(str(item.path)))
            item.add_marker(pytest.mark.timeout(BUILD_WAIT_S + 300))


@pytest.fixture(scope="module")
def k8s() -> Iterator[K8sCluster]:
    """This session's own cluster (``tk<pid>``), so concurrent test runs never share one."""
    try:
        check_k8s_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    down_dead_sessions(r"k8s-t[kl](\d+)", lambda d: K8sCluster(d.removeprefix("k8s-")).down())
    cluster = K8sCluster(f"tk{os.getpid()}")
    try:
        cluster.up()
    except BaseException:
        cluster.down()
        raise
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def project(tmp_path: Path, k8s: K8sCluster) -> Callable[..., Project]:
    """Make a project of its own (own name, own workdir on the claim) in this test's dir."""

    def make(**options: Any) -> Project:
        return Project(tmp_path, k8s, **options)

    return make
