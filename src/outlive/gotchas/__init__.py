"""The gotcha catalog as data, and the log matcher behind ``outlive explain``.

Stdlib only and cheap to import: the CLI loads it for ``explain`` and ``gotcha``.

    >>> from outlive.gotchas import by_id, explain_text
    >>> by_id("U6").handling.value
    'prevents'
    >>> [m.id for m in explain_text("bash: $'\\\\r': command not found\\n")]
    ['U26', 'GEN4']
"""

from __future__ import annotations

from outlive.gotchas.catalog import CATALOG, EXPECTED_IDS, by_id, search
from outlive.gotchas.match import (
    Explainer,
    Match,
    explain_file,
    explain_lines,
    explain_stream,
    explain_text,
)
from outlive.gotchas.model import PLATFORMS, Gotcha, Handling, Pattern, Source

__all__ = [
    "CATALOG",
    "EXPECTED_IDS",
    "PLATFORMS",
    "Explainer",
    "Gotcha",
    "Handling",
    "Match",
    "Pattern",
    "Source",
    "by_id",
    "explain_file",
    "explain_lines",
    "explain_stream",
    "explain_text",
    "search",
]
