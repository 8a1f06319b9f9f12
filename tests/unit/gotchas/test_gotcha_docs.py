"""docs/gotchas.md is generated from the catalog and must match it exactly."""

from __future__ import annotations

import subprocess
import sys

from gotcha_helpers import REPO

from outlive.gotchas import CATALOG, EXPECTED_IDS
from outlive.gotchas.render import render_markdown

PAGE = REPO / "docs" / "gotchas.md"
REGENERATE = "python -m outlive.gotchas.render > docs/gotchas.md"


def test_the_committed_page_is_what_the_catalog_renders() -> None:
    assert PAGE.read_text(encoding="utf-8") == render_markdown(), f"stale page: run `{REGENERATE}`"


def test_the_renderer_runs_as_a_module_and_prints_the_page() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "outlive.gotchas.render"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.decode("utf-8") == render_markdown()


def test_the_coverage_table_has_one_row_per_entry_with_its_handling() -> None:
    page = render_markdown()
    table = page.split("## Coverage", 1)[1].split("## Entries", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| [")]
    assert len(rows) == len(CATALOG) == len(EXPECTED_IDS)
    for i, g in enumerate(CATALOG):
        cells = [c.strip() for c in rows[i].strip("|").split(" | ")]
        assert cells[0] == f"[{g.id}](#{g.id.lower()})"
        assert cells[3] == g.handling.value


def test_every_entry_has_a_section_with_its_fix_and_proofs() -> None:
    page = render_markdown()
    for g in CATALOG:
        section = page.split(f"### {g.id} — ", 1)[1].split("\n### ", 1)[0]
        assert g.fix in section and g.symptom in section and g.cause in section
        for proof in g.proofs:
            assert proof in section
        for p in g.patterns:
            assert p.regex_source in section
