"""Waiting in tests without betting on a sleep: poll what can be observed, up to a deadline.

A test that sleeps "long enough" and then asserts passes on an idle machine and fails on a busy
one. ``wait_until`` polls a check instead and fails at a generous deadline naming what it waited
for, so a loaded machine only makes a test slower, never wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DEADLINE_S", "wait_until"]

T = TypeVar("T")

# Generous on purpose: a wait that is reached fails the test, so it must hold on a machine whose
# every core is busy (scripts/hog.sh), not only on an idle laptop.
DEADLINE_S = 120.0


def wait_until(
    check: Callable[[], T], what: str, timeout_s: float = DEADLINE_S, interval_s: float = 0.05
) -> T:
    """Call ``check`` until it returns something truthy and return that; past ``timeout_s``
    raise AssertionError naming ``what`` (and the last value seen)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}; last seen {value!r}"
            )
        time.sleep(interval_s)
