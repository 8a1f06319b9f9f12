"""Testbeds named after the pid of the test session that made them, removed when it died."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from outlive.testing.box import testbed_root

__all__ = ["down_dead_sessions"]


def down_dead_sessions(dir_re: str, down: Callable[[str], object]) -> None:
    """Call DOWN(dir name) for every testbed dir matching DIR_RE (whose one group is the pid of
    the session that made it) when that session is gone (SIGKILL, OOM, power)."""
    root = testbed_root()
    if not root.is_dir():
        return
    for d in sorted(root.iterdir()):
        m = re.fullmatch(dir_re, d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            down(d.name)
