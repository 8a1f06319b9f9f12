"""progress()'s sidecar: each JSON line's numbers as one binary row next to it, whose line place
proves the frames hold every line (``frames.covered``); key changes, text values, several
processes, a torn tail and a full disk leave the JSON lines the truth and the frames readable up
to where they stop."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Callable

import pytest

from outlive import wire
from outlive.ckpt import ProgressWriter
from outlive.ckpt.frames import Decoded, covered, decode


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _sidecar(path: Path) -> Decoded:
    return decode((path.parent / (path.name + wire.PROGRESS_BIN_SUFFIX)).read_bytes())


def _as_records(got: Decoded) -> list[dict[str, float]]:
    return [dict(zip(got.keys[k], values, strict=True)) for k, _, _, values in got.rows]


def _same(a: float, b: object) -> bool:
    """The row's value is the line's number, NaN for anything else (text, bools, an int past
    float64)."""
    try:
        want = float(b) if type(b) in (int, float) else math.nan  # type: ignore[arg-type]
    except OverflowError:
        want = math.nan
    return (math.isnan(a) and math.isnan(want)) or a == want


def test_each_row_holds_its_lines_numbers_and_place(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    for i in range(5):
        writer.write(i, {"loss": 1.0 / (i + 1), "lr": 3e-4, "tokens": 1000 * i})
    writer.close()
    got = _sidecar(path)
    assert list(got.keys.values()) == [["step", "loss", "lr", "tokens"]]  # one KEYS frame
    lines = _lines(path)
    assert covered(got.rows) == (path.stat().st_size, [0, 1, 2, 3, 4])
    for (_, start, length, _), line in zip(got.rows, lines, strict=True):
        assert path.read_bytes()[int(start) : int(start) + length] == line
    for record, line in zip(_as_records(got), lines, strict=True):
        want = json.loads(line)
        assert record == {k: float(v) for k, v in want.items() if k != "ts"}


def test_a_new_key_set_gets_its_keys_frame_and_text_values_are_nan(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    writer.write(1, {"loss": 0.5})
    writer.write(2, {"loss": float("nan"), "phase": "warmup", "ok": True, "big": 10**400})
    writer.write(3, {"loss": float("inf"), "phase": "main", "ok": False, "big": 7})
    writer.write(4, {"loss": 0.25})
    writer.close()
    got = _sidecar(path)
    assert sorted(got.keys.values()) == [["step", "loss"], ["step", "loss", "phase", "ok", "big"]]
    assert covered(got.rows)[0] == path.stat().st_size
    for record, line in zip(_as_records(got), _lines(path), strict=True):
        want = json.loads(line)  # the JSON line keeps the truth: "nan", "inf", text, bools
        assert set(record) == set(want) - {"ts"}
        assert all(_same(record[k], want[k]) for k in record), (record, want)
    assert json.loads(_lines(path)[1])["loss"] == "nan"


def test_rows_from_concurrent_processes_cover_every_line(
    tmp_path: Path, progress_from_ranks: Callable[[Path, str, float], None]
) -> None:
    path = tmp_path / "p.jsonl"
    progress_from_ranks(path, "loss=i / 7, pad='x' * (1 + i % 300)", 60)
    got = _sidecar(path)
    assert len(got.keys) == 1 and len(got.rows) == 1200
    end, kept = covered(got.rows)
    assert end == path.stat().st_size and len(kept) == 1200
    records = _as_records(got)
    lines = [json.loads(line) for line in _lines(path)]
    for i, line in zip(kept, lines, strict=True):  # in the lines' order, each its own line's
        assert records[i]["rank"] == line["rank"] and records[i]["step"] == line["step"]


def test_a_torn_tail_and_an_unknown_frame_stop_the_read_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    for i in range(3):
        writer.write(i, {"loss": float(i)})
    writer.close()
    data = (tmp_path / "progress.jsonl.bin").read_bytes()
    whole = decode(data)
    assert whole.end == len(data) and len(whole.rows) == 3
    for cut in range(1, 30):
        torn = decode(data[:-cut])
        assert len(torn.rows) == 2 and torn.end <= len(data) - cut
    assert decode(data + b"X" + data).rows == whole.rows  # nothing past what is not a frame
    # a row torn by a full disk, then another process's frames appended after it: the CRC
    # tells the torn row (completed by their bytes) from a row
    keys_end = len(data) - 3 * 40  # each row: 24 + 2 * 8 bytes, after the KEYS frame
    torn = data[: keys_end + 40 + 32] + data[keys_end:]  # its head whole, its values not
    assert decode(torn).rows == whole.rows[:1]
    assert decode(b"R" + data[1:]).rows == []  # a row whose keys were never written


def test_the_rows_tell_where_they_stop_covering_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    path.write_bytes(b'{"ts":1,"step":0,"loss":9}\n')  # a line from an older library
    writer = ProgressWriter(path)
    writer.write(1, {"loss": 0.5})
    writer.close()
    got = _sidecar(path)
    assert covered(got.rows) == (0, [])  # the frames begin after a line they do not hold
    path.unlink()
    (tmp_path / "progress.jsonl.bin").unlink()
    writer.write(1, {"loss": 0.5})
    with path.open("ab") as f:  # a line written by something else
        f.write(b'{"step": 2}\n')
    writer.write(3, {"loss": 0.25})
    writer.close()
    got = _sidecar(path)
    assert len(got.rows) == 2 and covered(got.rows) == (len(_lines(path)[0]), [0])


def test_a_full_disk_leaves_the_lines_the_truth_and_the_frames_short(
    small_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_tmpfs / "progress.jsonl"
    writer = ProgressWriter(path)
    with caplog.at_level(logging.WARNING, logger="outlive.ckpt"):
        for i in range(20_000):  # ~1 MiB of lines and frames: the tmpfs fills up
            writer.write(i, {"loss": i / 3, "pad": "x" * 40})
    writer.close()
    assert caplog.text.count("cannot be written") <= 2  # each file's failure logged once
    lines = _lines(path)
    got = _sidecar(path)
    end, kept = covered(got.rows)
    assert 0 < len(kept) <= len(lines)
    assert end == sum(len(line) for line in lines[: len(kept)])  # the rows hold a prefix
    for i in kept:
        assert got.rows[i][3][0] == json.loads(lines[i])["step"]


def test_a_sidecar_that_cannot_be_written_never_stops_the_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "progress.jsonl"
    (tmp_path / "progress.jsonl.bin").mkdir()  # the sidecar's name is taken: open fails
    writer = ProgressWriter(path)
    with caplog.at_level(logging.WARNING, logger="outlive.ckpt"):
        for i in range(3):
            writer.write(i, {"loss": 1.0})
    assert [json.loads(line)["step"] for line in _lines(path)] == [0, 1, 2]
    assert caplog.text.count("progress frames") == 1
