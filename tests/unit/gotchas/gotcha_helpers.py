"""Shared by the gotcha tests: fixture paths and a slow, obviously-correct reference matcher.

The reference reads a log line by line and runs every pattern of the catalog on every view of
every line, with no keyword prefilter and no blocks, so the fast engine can be checked against it.
"""

from __future__ import annotations

import re
from pathlib import Path

from outlive.gotchas import CATALOG, Gotcha

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLES = HERE / "fixtures" / "examples"
PUBLIC = HERE / "fixtures" / "public"  # real public logs, each headed by `# source: URL`
BENIGN = HERE / "fixtures" / "benign"
SOURCE_HEADER = "# source: "

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def pattern_entries() -> list[Gotcha]:
    """Catalog entries that carry symptom patterns."""
    return [g for g in CATALOG if g.patterns]


def example_files(gotcha_id: str) -> list[Path]:
    """The example logs of one entry, ``<ID>.log`` and ``<ID>.<what>.log``: the realistic ones
    and the public ones."""
    return sorted(p for p in all_example_files() if p.name.split(".")[0] == gotcha_id)


def all_example_files() -> list[Path]:
    return sorted([*EXAMPLES.iterdir(), *PUBLIC.iterdir()])


def public_files(gotcha_id: str | None = None) -> list[Path]:
    """Real public logs (of one entry when ``gotcha_id`` is given)."""
    files = sorted(PUBLIC.iterdir())
    return [p for p in files if gotcha_id is None or p.name.split(".")[0] == gotcha_id]


def source_of(path: Path) -> str:
    """The URL a public log was copied from (its first line)."""
    first = read_text(path).split("\n", 1)[0]
    return first[len(SOURCE_HEADER) :].strip() if first.startswith(SOURCE_HEADER) else ""


def benign_files() -> list[Path]:
    return sorted(BENIGN.iterdir())


def line_views(raw: str) -> list[str]:
    """What the engine shows the patterns for one physical line (see outlive.gotchas.match)."""
    line = _ANSI.sub("", raw)
    if line.endswith("\r"):
        line = line[:-1]
    views = line.split("\r")
    if 0 < line.count("\r") <= 4 and len(line) <= 1024:
        views.append(line.replace("\r", "\\r"))
    return views


def reference_explain(text: str) -> dict[str, int]:
    """ID -> first matching line (1-based), by brute force."""
    first: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        views = line_views(raw)
        for gotcha in CATALOG:
            if gotcha.id in first:
                continue
            if any(p.regex.search(v) for p in gotcha.patterns for v in views):
                first[gotcha.id] = number
    return first


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")
