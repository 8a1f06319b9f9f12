"""Every pattern-bearing entry fires on a realistic example, and nothing fires on healthy logs.

``test_example_log_fires[ID]`` is the proof each ``detects``-by-``outlive explain`` claim names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gotcha_helpers import (
    BENIGN,
    EXAMPLES,
    all_example_files,
    benign_files,
    example_files,
    line_views,
    pattern_entries,
    read_text,
    reference_explain,
)

from outlive.gotchas import CATALOG, Gotcha, explain_file

ENTRIES = pattern_entries()


@pytest.mark.parametrize("gotcha", ENTRIES, ids=[g.id for g in ENTRIES])
def test_example_log_fires(gotcha: Gotcha) -> None:
    files = example_files(gotcha.id)
    assert files, f"no example log for {gotcha.id} in {EXAMPLES}"
    for path in files:
        found = {m.id: m for m in explain_file(path)}
        assert gotcha.id in found, f"{gotcha.id} not reported for {path.name}: {sorted(found)}"
        match = found[gotcha.id]
        lines = read_text(path).split("\n")
        assert 1 <= match.line <= len(lines)
        assert match.text and match.title == gotcha.title and match.fix == gotcha.fix


def test_every_pattern_matches_a_line_of_an_example_of_an_entry_that_owns_it() -> None:
    owners: dict[int, list[Gotcha]] = {}
    for g in CATALOG:
        for p in g.patterns:
            owners.setdefault(id(p), []).append(g)
    missing = []
    for g in CATALOG:
        for p in g.patterns:
            views = [
                view
                for owner in owners[id(p)]
                for path in example_files(owner.id)
                for raw in read_text(path).split("\n")
                for view in line_views(raw)
            ]
            if not any(p.regex.search(v) for v in views):
                missing.append(f"{g.id}: {p.regex_source}")
    assert not missing, "patterns with no realistic example:\n" + "\n".join(missing)


def test_no_example_log_is_orphaned() -> None:
    ids = {g.id for g in ENTRIES}
    orphans = [p.name for p in all_example_files() if p.name.split(".")[0] not in ids]
    assert not orphans


@pytest.mark.parametrize("path", benign_files(), ids=lambda p: p.name)
def test_a_healthy_training_log_matches_nothing(path: Path) -> None:
    assert explain_file(path) == []


def test_the_benign_corpus_has_the_noise_real_logs_have() -> None:
    text = "".join(read_text(p) for p in benign_files())
    assert len(benign_files()) >= 5
    assert "\x1b[" in text, "ANSI colour codes"
    assert text.count("\r") > 100, "carriage-return progress bars"
    assert "it/s" in text and "%|" in text, "tqdm bars"
    assert "NVIDIA-SMI" in text and "No running processes found" in text, "nvidia-smi output"
    assert "Successfully installed" in text and "Collecting" in text, "pip install output"
    assert "Warning" in text or "WARNING" in text, "warnings that are not failures"
    assert "NCCL INFO" in text and "Trainer.fit" in text and "***** Running training" in text


def test_fast_engine_agrees_with_brute_force_on_every_fixture() -> None:
    for path in [*all_example_files(), *sorted(BENIGN.iterdir())]:
        fast = {m.id: m.line for m in explain_file(path)}
        assert fast == reference_explain(read_text(path)), path.name


def test_torch_save_failing_on_a_full_disk_reports_u6_first() -> None:
    for name in ("U6.log", "U6.iostream.log"):
        matches = explain_file(EXAMPLES / name)
        assert matches[0].id == "U6", (name, [m.id for m in matches])
    matches = explain_file(EXAMPLES / "U6.iostream.log")
    assert "basic_ios::clear: iostream error" in matches[0].text
    assert [m.id for m in matches] == ["U6", "U7"]  # the full df row is reported, after U6


def test_bash_carriage_return_command_not_found_reports_u26_and_gen4() -> None:
    matches = explain_file(EXAMPLES / "GEN4.log")
    assert [m.id for m in matches] == ["U26", "GEN4"]
    assert all(m.line == 2 and "$'\\r': command not found" in m.text for m in matches)
    assert matches[0].count == 3
