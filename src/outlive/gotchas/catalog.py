"""The assembled gotcha catalog: the seed entries, the ones added since (U44) and those beyond
the seeds written from public failure logs (X), in a stable order, with lookup and search."""

from __future__ import annotations

import re

from outlive.gotchas import (
    catalog_bare_ssh,
    catalog_beyond,
    catalog_beyond_gpu,
    catalog_paperspace,
    catalog_process,
    catalog_runpod,
    catalog_runtime,
    catalog_schedulers,
    catalog_transfer,
)
from outlive.gotchas.model import Gotcha

__all__ = ["CATALOG", "EXPECTED_IDS", "by_id", "search"]

_SERIES = (
    ("U", 44),
    ("GEN", 8),
    ("PS", 13),
    ("RP", 13),
    ("SLURM", 5),
    ("K8S", 6),
    ("NB", 5),
    ("X", 16),  # beyond the seeds: written from public failure logs (issue 19)
)

# The IDs the seed documents define (U1-U43 ...), the ones added since (U44) and the X series;
# the catalog must hold exactly these.
EXPECTED_IDS: tuple[str, ...] = tuple(
    f"{prefix}{n}" for prefix, count in _SERIES for n in range(1, count + 1)
)


_ID = re.compile(r"([A-Z0-9]*?[A-Z])(\d+)")
_SERIES_ORDER = [prefix for prefix, _ in _SERIES]


def _sort_key(gotcha: Gotcha) -> tuple[int, int]:
    parsed = _ID.fullmatch(gotcha.id)
    if parsed is None or parsed.group(1) not in _SERIES_ORDER:
        raise ValueError(f"gotcha id {gotcha.id!r} is not in any known series")
    return (_SERIES_ORDER.index(parsed.group(1)), int(parsed.group(2)))


def _assemble() -> tuple[Gotcha, ...]:
    entries = (
        catalog_process.ENTRIES
        + catalog_transfer.ENTRIES
        + catalog_runtime.ENTRIES
        + catalog_bare_ssh.ENTRIES
        + catalog_schedulers.ENTRIES
        + catalog_paperspace.ENTRIES
        + catalog_runpod.ENTRIES
        + catalog_beyond.ENTRIES
        + catalog_beyond_gpu.ENTRIES
    )
    ids = [g.id for g in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate gotcha ids: {duplicates}")
    return tuple(sorted(entries, key=_sort_key))


CATALOG: tuple[Gotcha, ...] = _assemble()
_BY_ID = {g.id: g for g in CATALOG}


def by_id(gotcha_id: str) -> Gotcha:
    """The entry with ``gotcha_id`` (case-insensitive); raises KeyError naming the bad ID."""
    try:
        return _BY_ID[gotcha_id.strip().upper()]
    except KeyError:
        raise KeyError(f"no gotcha {gotcha_id!r}; IDs look like U6, GEN4, RP1, SLURM2") from None


def search(words: str) -> list[Gotcha]:
    """Entries whose texts contain every word of ``words`` (case-insensitive), catalog order."""
    needles = words.lower().split()
    hits = []
    for g in CATALOG:
        hay = " ".join((g.id, g.title, g.symptom, g.cause, g.fix, g.handled_by)).lower()
        if all(n in hay for n in needles):
            hits.append(g)
    return hits
