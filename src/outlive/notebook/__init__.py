"""Notebook platforms: generated notebooks whose runs survive their sessions.

- :mod:`outlive.notebook.cells` -- nbformat v4 JSON, written by hand (no nbformat at run time)
- :mod:`outlive.notebook.common` -- what every generator shares: names, the embedded project and
  agent, the danger-clocks cell, the launch request
- :mod:`outlive.notebook.colab` -- ``outlive notebook colab``: Drive, code, a supervised,
  resumable run cell (the box side is ``outlive.agent.box.notebook``)
- :mod:`outlive.notebook.gradient` -- ``outlive notebook gradient``: /storage, a venv there, a save
  before the auto-shutdown (the box side is ``outlive.agent.box.gradient``)
"""

from __future__ import annotations

__all__: list[str] = []
