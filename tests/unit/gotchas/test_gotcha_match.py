"""The matching engine: normalisation (ANSI, carriage returns, CRLF), line numbers, ordering,
dedup, filters, chunk boundaries, pathological lines, and a 20 MB noisy log."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from gotcha_helpers import BENIGN, EXAMPLES, read_text, reference_explain

from outlive.gotchas import (
    Explainer,
    Source,
    explain_file,
    explain_lines,
    explain_stream,
    explain_text,
)
from outlive.gotchas.match import MAX_TEXT_CHARS

IOSTREAM = "RuntimeError: basic_ios::clear: iostream error"


def ids(text: str, platform: str | None = None, kinds: set[Source] | None = None) -> dict[str, int]:
    return {m.id: m.line for m in explain_text(text, platform, kinds)}


def test_colour_codes_are_stripped_even_inside_the_signature() -> None:
    text = "ok\n\x1b[31;1mRuntimeError\x1b[0m: basic_ios::\x1b[1mclear\x1b[22m: iostream error\n"
    [match] = explain_text(text)
    assert (match.id, match.line, match.text) == ("U6", 2, IOSTREAM)


def test_each_progress_bar_redraw_is_its_own_segment_so_anchors_work() -> None:
    bar = "".join(f"\rEpoch 0: {p:3d}%|####| {p}/100 [00:01<00:02]" for p in range(0, 60, 5))
    text = f"start\n{bar}\rKilled\nafter\n"
    [match] = explain_text(text)
    assert (match.id, match.line, match.text) == ("U9", 2, "Killed")


def test_crlf_line_endings_do_not_break_end_anchors() -> None:
    text = "sending\r\nlost connection\r\nKilled\r\n"
    assert ids(text) == {"U12": 2, "GEN3": 2, "U9": 3}


def test_a_carriage_return_inside_a_bash_message_is_seen_as_backslash_r() -> None:
    text = "x\nrun.sh: line 3: set: pipefail\r: invalid option name\n"
    matches = explain_text(text)
    assert [m.id for m in matches] == ["U26", "GEN4"]
    assert matches[0].text == "run.sh: line 3: set: pipefail\\r: invalid option name"


def test_a_long_redrawn_line_is_not_mistaken_for_a_stray_carriage_return() -> None:
    bar = "".join(f"\r{i}: invalid option" for i in range(20))  # many CRs: a progress line
    assert explain_text(bar + "\n") == []


def test_line_numbers_count_newlines_only() -> None:
    bar = "\r".join(["10%", "20%", "30%"])
    text = f"a\n{bar}\n{bar}\nb\n{IOSTREAM}\n"
    assert explain_text(text)[0].line == 5


def test_each_id_is_reported_once_with_its_first_line_and_a_count() -> None:
    text = "\n".join(["x", "Killed", "y", "Killed", "Killed", "Killed\rKilled"]) + "\n"
    [match] = explain_text(text)
    assert (match.id, match.line, match.count) == ("U9", 2, 4)


def test_most_specific_first_then_first_line_then_catalog_order() -> None:
    text = "\n".join(
        [
            "cp: cannot create regular file 'x': No space left on device",  # U7, specificity 4
            "client_loop: send disconnect: Broken pipe",  # GEN2, 4
            "Killed",  # U9, 3
            IOSTREAM,  # U6, 9
            "bash: $'\\r': command not found",  # U26 and GEN4, 9
        ]
    )
    assert [m.id for m in explain_text(text)] == ["U6", "U26", "GEN4", "U7", "GEN2", "U9"]


def test_an_entry_ranks_by_the_most_specific_pattern_it_matched() -> None:
    text = "Killed\n[1.0] Memory cgroup out of memory: Killed process 42 (python)\n"
    [match] = explain_text(text)
    assert (match.line, match.specificity) == (1, 8)


def test_platform_filter_drops_entries_of_other_platforms() -> None:
    text = read_text(EXAMPLES / "RP11.log")
    assert set(ids(text)) == {"RP11", "U7"}
    assert set(ids(text, platform="runpod")) == {"RP11", "U7"}
    assert set(ids(text, platform="slurm")) == {"U7"}


def test_a_profile_name_selects_its_platform_family() -> None:
    text = read_text(EXAMPLES / "PS11.log")
    assert set(ids(text, platform="paperspace-core")) == {"PS11"}
    assert set(ids(text, platform="paperspace-notebook")) == {"PS11"}
    assert set(ids(text, platform="local")) == set()
    assert set(ids(text, platform="generic-ssh")) == set()


def test_kind_filter_keeps_only_patterns_of_those_sources() -> None:
    text = read_text(EXAMPLES / "U9.dmesg.log") + read_text(EXAMPLES / "U1.log")
    assert set(ids(text, kinds={Source.DMESG})) == {"U9"}
    assert set(ids(text, kinds={Source.COMMAND})) == {"U1"}


def test_match_as_dict_follows_the_explain_json_contract() -> None:
    [match] = explain_text(IOSTREAM + "\n")
    doc = json.loads(json.dumps({"matches": [match.as_dict()]}))
    entry = doc["matches"][0]
    assert {"id", "line", "text", "title"} <= set(entry)
    assert (entry["id"], entry["line"], entry["text"]) == ("U6", 1, IOSTREAM)
    assert isinstance(entry["title"], str) and entry["title"]


def test_a_huge_matched_line_is_cut_to_an_excerpt_around_the_match() -> None:
    text = "x" * 3000 + " " + IOSTREAM + " " + "y" * 3000 + "\n"
    [match] = explain_text(text)
    assert len(match.text) <= MAX_TEXT_CHARS and "iostream error" in match.text


def test_a_multi_megabyte_line_without_newlines_is_scanned_in_bounded_pieces() -> None:
    junk = "".join(random.Random(3).choices("abc (){}[]:;'\"\\ 0123", k=3_000_000))
    text = junk + "\rKilled\r" + junk + " " + IOSTREAM + " " + junk
    data = (text + "\nKilled\n").encode()
    result = {m.id: m.line for m in explain_stream(io.BytesIO(data), chunk_bytes=1 << 16)}
    assert result == {"U6": 1, "U9": 1}


def test_patterns_stay_quick_on_adversarial_lines() -> None:
    # Near-misses of every keyword, repeated up to the segment cap: must finish (no backtracking).
    from outlive.gotchas import CATALOG

    keywords = {p.keyword for g in CATALOG for p in g.patterns}
    line = " ".join(k[:-1] + " " + k for k in sorted(keywords)) * 3
    text = "\n".join([line] * 50) + "\n"
    explain_text(text)  # the assertion is that it returns; pytest-timeout guards the time


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 4096, 1 << 20])
def test_results_do_not_depend_on_where_the_stream_is_cut(chunk_bytes: int) -> None:
    parts = [read_text(p) for p in [*sorted(EXAMPLES.iterdir()), *sorted(BENIGN.iterdir())][:20]]
    data = "".join(p if p.endswith("\n") else p + "\n" for p in parts).encode()
    whole = [(m.id, m.line, m.count) for m in explain_text(data.decode())]
    cut = [
        (m.id, m.line, m.count) for m in explain_stream(io.BytesIO(data), chunk_bytes=chunk_bytes)
    ]
    assert cut == whole and whole


def test_lines_of_a_file_split_only_on_newlines_match_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(
        (read_text(EXAMPLES / "U26.log") + read_text(BENIGN / "lightning_cifar.log")).encode()
    )
    with open(path, encoding="utf-8", newline="\n") as f:
        from_lines = explain_lines(f)
    assert from_lines == explain_file(path)
    assert explain_lines(["ok", "multi\nline item", IOSTREAM]) == explain_text(
        "ok\nmulti\rline item\n" + IOSTREAM
    )


def test_invalid_utf8_and_nul_bytes_do_not_stop_the_scan() -> None:
    data = b"\xff\xfe garbage \x00\x00\n\xc3(\n" + IOSTREAM.encode() + b"\n"
    assert [(m.id, m.line) for m in explain_stream(io.BytesIO(data))] == [("U6", 3)]


def test_an_empty_log_matches_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    assert explain_file(tmp_path / "empty.log") == []
    assert explain_lines([]) == []
    explainer = Explainer()
    explainer.feed("")
    assert explainer.matches() == []


NEEDLES: list[tuple[str, str]] = [
    ("U6", (EXAMPLES / "U6.log").read_text(encoding="utf-8")),
    ("GEN4", "setup.sh: line 1: $'\\r': command not found\n"),
    ("K8S1", read_text(EXAMPLES / "K8S1.log")),
    ("U22", "[ 8812.1] NVRM: Xid (PCI:0000:3b:00): 79, pid=4242, GPU has fallen off the bus.\n"),
    (
        "SLURM4",
        "\x1b[31mslurmstepd: error: Detected 1 oom-kill event(s) in StepId=1.batch\x1b[0m\n",
    ),
    ("U10", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n"),
]


def test_a_20_mb_noisy_log_reports_exactly_the_planted_gotchas_at_their_lines(
    tmp_path: Path,
) -> None:
    noise = [read_text(p) for p in sorted(BENIGN.iterdir())]
    rnd = random.Random(11)
    path = tmp_path / "noisy.log"
    expected: dict[str, int] = {}
    line = 1
    size = 0
    plant_at = sorted(rnd.sample(range(20, 1200), len(NEEDLES)))
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        block = 0
        while size < 20_000_000:
            chunk = noise[block % len(noise)]
            if not chunk.endswith("\n"):
                chunk += "\n"
            if plant_at and block == plant_at[0]:
                plant_at.pop(0)
                gid, needle = NEEDLES[len(expected)]
                offset = next(
                    i for i, raw in enumerate(needle.split("\n"), start=0) if reference_explain(raw)
                )
                expected[gid] = line + offset
                chunk = needle + chunk
            f.write(chunk)
            line += chunk.count("\n")
            size += len(chunk)
            block += 1
    assert len(expected) == len(NEEDLES)
    found = {m.id: m.line for m in explain_file(path)}
    expected_ids = set(expected) | {"U26", "U7"}  # GEN4's line is also U26; U6.log has no df row
    assert set(found) - {"U7"} == expected_ids - {"U7"}
    for gid, at in expected.items():
        assert found[gid] == at, (gid, found[gid], at)
    assert found["U26"] == expected["GEN4"]
