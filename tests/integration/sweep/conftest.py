"""Sweep fixtures: two testbed boxes of this session's own; the local-target project helpers
are shared with tests/integration/local."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

from outlive import testing
from outlive.testing import Box, TestbedUnavailable, check_prerequisites

_OWN_BOX_RE = re.compile(r"sw(\d+)[ab]")


@pytest.fixture(scope="module")
def two_boxes() -> Iterator[tuple[Box, Box]]:
    """Two boxes of this test session's own (``sw<pid>a``, ``sw<pid>b``)."""
    try:
        check_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    root = testing.testbed_root()  # (imported by name, pytest would collect it)
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        m = _OWN_BOX_RE.fullmatch(d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            Box(d.name).down()  # left by a session that died without its teardown
    made: list[Box] = []
    try:
        for suffix in "ab":
            made.append(Box.up(f"sw{os.getpid()}{suffix}"))
        yield made[0], made[1]
    finally:
        for b in made:
            b.down()
