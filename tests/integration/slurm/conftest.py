"""A real single-node Slurm cluster (munged + slurmctld + slurmd from Debian's packages) for the
whole test session, on free ports and in its own directory, always torn down. It skips, naming
what is missing, when not root or Slurm/munge are not installed (a failure under CI=true).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlive.testing import TestbedUnavailable, testbed_root
from outlive.testing.slurm import SlurmCluster, check_slurm_prerequisites

_SESSION_RE = re.compile(r"slurm-ts(\d+)")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """This session's own cluster (``ts<pid>``), so concurrent test runs never share one."""
    try:
        check_slurm_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    _down_clusters_of_dead_sessions()
    name = f"ts{os.getpid()}"
    try:
        cluster = SlurmCluster.up(name)
    except BaseException:
        SlurmCluster(name).down()
        raise
    try:
        yield cluster
    finally:
        cluster.down()


def _down_clusters_of_dead_sessions() -> None:
    """Remove clusters whose test session died without its teardown (SIGKILL, OOM, power)."""
    root = testbed_root()
    if not root.is_dir():
        return
    for d in sorted(root.iterdir()):
        m = _SESSION_RE.fullmatch(d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            SlurmCluster(d.name.removeprefix("slurm-")).down()
