"""Notebook platforms: generated notebooks whose runs survive their sessions.

- :mod:`outlive.notebook.cells` -- nbformat v4 JSON, written by hand (no nbformat at run time)
- :mod:`outlive.notebook.colab` -- ``outlive notebook colab``: Drive, code, a supervised,
  resumable run cell (the box side is ``outlive.agent.box.notebook``)
"""

from __future__ import annotations

__all__: list[str] = []
