"""Errors of the throwaway testbed, under outlive's one hierarchy.

OutliveError
└── TestbedError            the testbed could not be started or driven
    └── TestbedUnavailable  this machine lacks root or a tool the testbed needs
"""

from __future__ import annotations

from outlive.errors import OutliveError

__all__ = ["TestbedError", "TestbedUnavailable"]


class TestbedError(OutliveError):
    """The testbed could not be started or driven."""

    __test__ = False  # not a pytest test class, despite the name


class TestbedUnavailable(TestbedError):
    """This machine lacks root or a tool the testbed needs; tests skip on it (never under CI)."""
