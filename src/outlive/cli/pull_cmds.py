"""`pull`, `verify` and `down`: get results off the box, prove them, and gate teardown."""

from __future__ import annotations
