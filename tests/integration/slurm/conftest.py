"""A real single-node Slurm cluster (munged + slurmctld + slurmd from Debian's packages) for the
whole test session, on free ports and in its own directory, always torn down. It skips, naming
what is missing, when not root or Slurm/munge are not installed (a failure under CI=true).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from outlive.testing import TestbedUnavailable
from outlive.testing._sessions import down_dead_sessions
from outlive.testing.slurm import SlurmCluster, check_slurm_prerequisites


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """This session's own cluster (``ts<pid>``), so concurrent test runs never share one."""
    try:
        check_slurm_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    down_dead_sessions(r"slurm-ts(\d+)", lambda d: SlurmCluster(d.removeprefix("slurm-")).down())
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
