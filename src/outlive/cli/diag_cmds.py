"""`up` (Phase-0 audit of a box) and `doctor` (why a run died or is slow)."""

from __future__ import annotations
