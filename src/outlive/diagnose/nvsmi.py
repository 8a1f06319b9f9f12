"""Parsers for what ``nvidia-smi`` prints: ``--query-gpu`` / ``--query-compute-apps`` CSV
(``--format=csv,noheader,nounits``), ``-q -d PERFORMANCE`` and ``dmon``.

nvidia-smi's text output is not promised to stay the same across drivers, so every parser
accepts the variants seen so far (``Clocks Event Reasons`` since R535, ``Clocks Throttle
Reasons`` before it; ``dmon`` columns that come and go) and raises :class:`NvsmiParseError`
naming the line it cannot read instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "GpuPerformance",
    "NvsmiParseError",
    "Performance",
    "parse_compute_apps",
    "parse_dmon",
    "parse_performance",
    "parse_query_csv",
]

Value = str | float | None

# What nvidia-smi writes where a value does not exist or cannot be read.
_MISSING = frozenset(
    {
        "",
        "-",
        "N/A",
        "[N/A]",
        "Not Supported",
        "[Not Supported]",
        "[Unknown Error]",
        "[Insufficient Permissions]",
        "[GPU is lost]",
        "[Requires Persistence Mode]",
    }
)
# Query fields that are text, never numbers.
_TEXT_FIELDS = frozenset(
    {"name", "uuid", "gpu_uuid", "pci.bus_id", "driver_version", "pstate", "process_name"}
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class NvsmiParseError(ValueError):
    """nvidia-smi printed something this parser does not understand."""


def _value(field_name: str, raw: str) -> Value:
    raw = raw.strip()
    if raw in _MISSING:
        return None
    if field_name in _TEXT_FIELDS:
        return raw
    if _NUMBER.match(raw):
        return float(raw)
    return raw  # e.g. an enabled/disabled field; the caller decides


def parse_query_csv(text: str, fields: Sequence[str]) -> list[dict[str, Value]]:
    """Rows of ``--query-gpu=F1,F2,... --format=csv,noheader,nounits``, one dict per GPU.

    Missing values (``[N/A]``, ``[Not Supported]``) become None; numbers become floats. A GPU
    name holding a comma would add a column: the extra pieces are joined back into ``name``."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) > len(fields) and "name" in fields:
            at = list(fields).index("name")
            extra = len(cells) - len(fields)
            cells[at : at + extra + 1] = [", ".join(cells[at : at + extra + 1])]
        if len(cells) != len(fields):
            raise NvsmiParseError(
                f"line {lineno} of nvidia-smi's CSV has {len(cells)} values for "
                f"{len(fields)} fields: {line.strip()!r}"
            )
        rows.append({f: _value(f, c) for f, c in zip(fields, cells, strict=True)})
    return rows


def parse_compute_apps(text: str, fields: Sequence[str]) -> list[dict[str, Value]]:
    """Rows of ``--query-compute-apps=...``; an empty list when no process uses a GPU (older
    drivers print a "No running processes found" line instead of nothing)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and "no running" not in ln.lower()]
    return parse_query_csv("\n".join(lines), fields)


@dataclass(frozen=True)
class GpuPerformance:
    """One GPU's block of ``nvidia-smi -q -d PERFORMANCE``."""

    bus_id: str
    pstate: str | None
    # Reason name -> active, from "Clocks Event Reasons" (or the older "Clocks Throttle Reasons").
    reasons: dict[str, bool] = field(default_factory=dict)

    @property
    def active(self) -> list[str]:
        return [name for name, on in self.reasons.items() if on]


@dataclass(frozen=True)
class Performance:
    driver_version: str | None
    cuda_version: str | None  # the newest CUDA the driver supports (the header's "CUDA Version")
    gpus: list[GpuPerformance]


_KV = re.compile(r"^(\s*)([^:]+?)\s*:\s*(.*?)\s*$")
_GPU_HEADER = re.compile(
    r"^GPU\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\s*$"
)
_REASON_SECTIONS = ("clocks event reasons", "clocks throttle reasons")


def parse_performance(text: str) -> Performance:
    """``nvidia-smi -q -d PERFORMANCE``: the driver and CUDA versions from the header, and per
    GPU the performance state and which clock event (throttle) reasons are active (U23)."""
    driver = cuda = None
    gpus: list[GpuPerformance] = []
    bus: str | None = None
    pstate: str | None = None
    reasons: dict[str, bool] = {}
    section: str | None = None
    section_indent = 0

    def flush() -> None:
        if bus is not None:
            gpus.append(GpuPerformance(bus, pstate, dict(reasons)))

    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("="):
            continue
        gpu = _GPU_HEADER.match(line)
        if gpu:
            flush()
            bus, pstate, reasons, section = gpu.group(1), None, {}, None
            continue
        indent = len(line) - len(line.lstrip())
        kv = _KV.match(line)
        if kv is None:  # a section heading such as "    Clocks Event Reasons"
            section, section_indent = line.strip().lower(), indent
            continue
        key, value = kv.group(2).strip(), kv.group(3).strip()
        if section is not None and indent <= section_indent:
            section = None
        if bus is None:
            if key == "Driver Version":
                driver = value
            elif key == "CUDA Version":
                cuda = value
            continue
        if key == "Performance State":
            pstate = value
        elif section in _REASON_SECTIONS and value in ("Active", "Not Active"):
            reasons[key] = value == "Active"
    flush()
    if bus is None and driver is None:
        raise NvsmiParseError(
            "nvidia-smi -q -d PERFORMANCE printed no 'Driver Version' and no GPU block"
        )
    return Performance(driver, cuda, gpus)


def parse_dmon(text: str) -> list[dict[str, float | None]]:
    """Samples of ``nvidia-smi dmon``: one dict per data line, keyed by the column names of the
    ``# gpu pwr gtemp ...`` header above it (columns differ by driver and ``-s``; the header
    repeats every few lines). ``-`` (not supported) becomes None."""
    columns: list[str] | None = None
    samples = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            names = stripped.lstrip("#").split()
            if names and names[0].lower() in ("gpu", "date"):
                columns = [n.lower() for n in names]
            continue  # the units line ("# Idx W C ...") or another comment
        if columns is None:
            raise NvsmiParseError(f"dmon line {lineno} comes before any '# gpu ...' header")
        cells = stripped.split()
        if len(cells) != len(columns):
            raise NvsmiParseError(
                f"dmon line {lineno} has {len(cells)} values for {len(columns)} columns: "
                f"{stripped!r}"
            )
        sample: dict[str, float | None] = {}
        for name, cell in zip(columns, cells, strict=True):
            sample[name] = float(cell) if _NUMBER.match(cell) else None
        samples.append(sample)
    return samples
