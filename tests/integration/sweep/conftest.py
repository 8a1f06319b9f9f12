"""Sweep fixtures: the local-target project helpers are shared with tests/integration/local."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
