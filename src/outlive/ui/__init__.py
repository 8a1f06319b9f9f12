"""``outlive ui``: a local, read-mostly web dashboard of every run.

- ``server``: the stdlib HTTP server, its routes and replies (127.0.0.1 only)
- ``auth``: the per-start token, its cookie, the Host and CSRF checks
- ``looks``: the board's snapshots, one look at a time and only while a page listens
- ``runview``: what a run page reads (the progress file, log, checkpoints, pulls, explain)
- ``progress``: the progress file as the page gets it (its lines first, then parsed columns)
- ``static/``: the pages and their scripts, and uPlot (MIT, from npm) with its licence

The CLI imports this package only for ``outlive ui``.
"""

from __future__ import annotations

from outlive.ui.server import UiServer

__all__ = ["UiServer"]
