"""Integration fixtures: a real throwaway SSH box (outlive.testing) shared by the whole session.

``box`` yields an ``outlive.testing.Box``: ``box.target`` (an outlive.toml target table as a dict),
``box.ssh_config`` (pass as ``ssh -F``), ``box.ssh(...)``, ``box.reboot()``, ``box.cut()``,
``box.restore()``, ``box.boot_id()``, ``box.procs()``. ``tag`` names a test's own directories and
runs on the session-wide box or cluster, so no two tests (nor two parametrizations) share one.
A test that cuts or kills the box need not undo it: after every test that used ``box`` the link
is restored and a dead box restarted. It skips with the missing piece named when not root or sshd
is missing (a failure under CI=true).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlive.testing import Box, TestbedUnavailable, check_prerequisites, testbed_root

# Boxes named after the pid of the test session that made them (tb<pid>, tc<pid>).
_SESSION_BOX_RE = re.compile(r"t[bc](\d+)")


@pytest.fixture(scope="session")
def box() -> Iterator[Box]:
    """A box of this session's own (``tb<pid>``), so concurrent test runs never share one."""
    try:
        check_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    _down_boxes_of_dead_sessions()
    name = f"tb{os.getpid()}"
    try:
        b = Box.up(name)
    except BaseException:
        Box(name).down()
        raise
    try:
        yield b
    finally:
        b.down()


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    """This test's own short name for directories on the shared box or cluster: readable, and
    unique per test node (parametrizations included) and per call."""
    node = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    return f"{request.node.originalname[:20]}-{node}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def _box_healed_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    b = (getattr(request.node, "funcargs", None) or {}).get("box")  # None once interrupted
    if isinstance(b, Box):
        b.heal()


def _down_boxes_of_dead_sessions() -> None:
    """Remove boxes whose test session died without its teardown (SIGKILL, OOM, power)."""
    root = testbed_root()
    if not root.is_dir():
        return
    for d in sorted(root.iterdir()):
        m = _SESSION_BOX_RE.fullmatch(d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            Box(d.name).down()
