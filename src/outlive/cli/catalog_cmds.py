"""`profiles`, `gotcha` and `explain`: the platform facts and the gotcha catalog."""

from __future__ import annotations
