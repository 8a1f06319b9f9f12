"""The catalog is the seed IDs plus the X series, complete, honest about its claims, and cheap to
import."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys

import pytest
from gotcha_helpers import REPO

import outlive.gotchas
from outlive.gotchas import CATALOG, EXPECTED_IDS, PLATFORMS, Handling, Source, by_id, search
from outlive.gotchas.model import Gotcha, Pattern, derive_keyword, required_literals

SEED_IDS = (
    {f"U{n}" for n in range(1, 44)}
    | {f"GEN{n}" for n in range(1, 9)}
    | {f"PS{n}" for n in range(1, 14)}
    | {f"RP{n}" for n in range(1, 14)}
    | {f"SLURM{n}" for n in range(1, 6)}
    | {f"K8S{n}" for n in range(1, 7)}
    | {f"NB{n}" for n in range(1, 6)}
)
BEYOND_IDS = {f"X{n}" for n in range(1, 17)}
TOTAL = 93 + 1 + 16


ADDED_IDS = {"U44"}  # beyond the seeds: software missing on the box (issue 13)


def test_the_catalog_holds_exactly_the_seed_ids_the_added_ones_and_the_x_series_once_each() -> None:
    ids = [g.id for g in CATALOG]
    assert len(ids) == len(set(ids)) == TOTAL
    assert set(ids) == SEED_IDS | ADDED_IDS | BEYOND_IDS == set(EXPECTED_IDS)


def test_every_entry_has_a_title_symptom_cause_and_fix() -> None:
    for g in CATALOG:
        for field in (g.title, g.symptom, g.cause, g.fix, g.handled_by):
            assert field.strip() and field == field.strip(), g.id
        assert len(g.title) <= 90, g.id
        assert set(g.platforms) <= set(PLATFORMS) and g.platforms, g.id
        assert 1 <= g.specificity <= 9


def test_related_ids_point_at_other_entries() -> None:
    for g in CATALOG:
        for other in g.related:
            assert other in SEED_IDS | ADDED_IDS | BEYOND_IDS and other != g.id, (g.id, other)


def test_entries_are_frozen() -> None:
    with pytest.raises(AttributeError):
        CATALOG[0].title = "changed"  # type: ignore[misc]


def test_an_entry_that_claims_too_much_without_proof_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="needs a proof test"):
        Gotcha(
            id="X1",
            title="t",
            symptom="s",
            cause="c",
            fix="f",
            platforms=("any",),
            handling=Handling.PREVENTS,
            handled_by="something",
        )
    with pytest.raises(ValueError, match="empty"):
        Gotcha("X2", "t", " ", "c", "f", ("any",), Handling.DOCUMENTS, "ref")


def test_every_prevents_or_detects_claim_names_a_test_that_pytest_collects() -> None:
    claims = {p: g.id for g in CATALOG if g.handling is not Handling.DOCUMENTS for p in g.proofs}
    assert claims and all(g.proofs for g in CATALOG if g.handling is not Handling.DOCUMENTS)
    files = sorted({p.split("::")[0] for p in claims})
    for f in files:
        assert (REPO / f).is_file(), f"proof file {f} does not exist"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    collected = set(out.stdout.split())
    missing = [f"{gid}: {p}" for p, gid in claims.items() if p not in collected]
    assert not missing, "proof tests not collected:\n" + "\n".join(missing) + out.stderr[-2000:]


def test_handling_counts_are_what_the_docs_say() -> None:
    counts = {h: sum(g.handling is h for g in CATALOG) for h in Handling}
    assert sum(counts.values()) == TOTAL == len(EXPECTED_IDS)
    page = (REPO / "docs" / "gotchas.md").read_text(encoding="utf-8")
    summary = ", ".join(f"{counts[h]} {h.value}" for h in Handling)
    assert f"Today: {summary}." in page


def test_patterns_are_compiled_tagged_and_prefiltered_on_a_required_literal() -> None:
    for g in CATALOG:
        for p in g.patterns:
            assert isinstance(p.regex, re.Pattern) and p.regex.flags & re.IGNORECASE == 0
            assert isinstance(p.kind, Source)
            assert len(p.keyword) >= 3
            runs = required_literals(p.regex_source)
            # a raw carriage return inside a message reaches the regex spelled \r (match.py)
            pieces = runs + [piece for run in runs for piece in run.split("\\r")]
            assert any(p.keyword in piece for piece in pieces), (g.id, p.regex_source)


@pytest.mark.parametrize(
    ("regex", "literals"),
    [
        (r"basic_ios::clear: iostream error", ["basic_ios::clear: iostream error"]),
        (r"unexpected pos \d+ vs \d+", ["unexpected pos ", " vs "]),
        (r"torch\.(?:cuda\.)?OutOfMemoryError", ["torch.", "OutOfMemoryError"]),
        (r"Detected \d+ oom[-_]kill event", ["Detected ", " oom", "kill event"]),
        (r"exited with code 137\b", ["exited with code 137"]),
        (r"^\S+\s+0\s+100% /(?!snap/)", ["0", "100% /"]),
        (r"colou?r map", ["colo", "r map"]),
        (r"x{2,3}yz", ["yz"]),
    ],
)
def test_required_literals_are_what_every_match_must_contain(
    regex: str, literals: list[str]
) -> None:
    assert required_literals(regex) == literals
    assert derive_keyword(regex) == max(literals, key=len)


def test_a_pattern_whose_literal_is_not_required_is_refused() -> None:
    with pytest.raises(ValueError, match="alternation"):
        Pattern(r"foo error|bar error")
    with pytest.raises(ValueError, match="not a literal"):
        Pattern(r"(?:optional )?words here", keyword="optional")
    with pytest.raises(ValueError, match="no literal"):
        Pattern(r"\d+\s+\d+")


def test_lookup_is_case_insensitive_and_names_a_bad_id() -> None:
    assert by_id("u6").id == "U6" and by_id(" k8s1 ").id == "K8S1"
    with pytest.raises(KeyError, match="no gotcha 'U99'"):
        by_id("U99")


def test_search_finds_entries_by_every_word() -> None:
    assert [g.id for g in search("zombie vram")] == ["U11"]
    assert "U7" in [g.id for g in search("inodes")]
    assert search("no such words anywhere xyzzy") == []


def test_the_package_docstring_example_runs() -> None:
    assert doctest.testmod(outlive.gotchas).failed == 0


def test_public_surface_is_what_we_mean_to_export() -> None:
    assert set(outlive.gotchas.__all__) == {
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
    }


def test_importing_the_catalog_pulls_in_nothing_outside_the_standard_library() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import outlive.gotchas; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout)
    third_party = [m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names]
    assert [m for m in third_party if not m.startswith("outlive")] == []
    assert all(m == "outlive" or m.startswith(("outlive.gotchas", "outlive.")) for m in third_party)
    assert not [m for m in loaded if m.startswith(("outlive.cli", "outlive.ckpt", "numpy"))]


def test_every_regex_of_the_catalog_compiles() -> None:
    # regexes compile lazily at first use (explain's start-up); here every one is compiled
    for g in CATALOG:
        for p in g.patterns:
            assert p.regex.pattern == p.regex_source and p.regex is p.regex, (g.id, p)
