"""The progress file as the run page receives it: the box's bytes, whole lines only, each line
once however the reads cut the file, a line still being written waiting for its newline; once
parsed, every record as columns that read back exactly (gaps where a record lacks a metric)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from outlive.ckpt.heartbeat import ProgressWriter
from outlive.ui.progress import ProgressLines


def _decode(body: bytes) -> tuple[dict[str, object], bytes]:
    hlen = int.from_bytes(body[:4], "little")
    return json.loads(body[4 : 4 + hlen]), body[4 + hlen :]


def test_the_writer_s_own_file_comes_back_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    for i in range(50):
        writer.write(i, {"loss": 1.0 / (i + 1), "note": "text"})
    writer.close()
    raw = path.read_bytes()
    lines = ProgressLines()
    lines.feed(raw)
    head, data = _decode(lines.since(0))
    assert data == raw
    assert head == {"format": "lines", "since": 0, "end": len(raw), "complete": False}
    assert [json.loads(line)["step"] for line in data.splitlines()] == list(range(50))


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=6), st.integers(1, 30))
def test_chunks_cut_anywhere_give_the_same_lines(cuts: list[int], n: int) -> None:
    data = b"".join(json.dumps({"step": i, "loss": i / 3}).encode() + b"\n" for i in range(n))
    torn = b'{"step": 999, "lo'  # being written when the box was read
    pieces = ProgressLines()
    points = sorted({min(c * 7, len(data)) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        pieces.feed(data[start:point])
        start = point
    pieces.feed(torn)
    head, got = _decode(pieces.since(0))
    assert got == data and head["end"] == len(data)
    second = data.index(b"\n") + 1
    _, rest = _decode(pieces.since(second))
    assert rest == data[second:]


def test_an_offset_inside_a_line_moves_on_to_the_next_line() -> None:
    lines = ProgressLines()
    lines.feed(b'{"step": 1}\n{"step": 2}\n{"step": 3')
    head, data = _decode(lines.since(3))
    assert data == b'{"step": 2}\n' and head["since"] == 12
    lines.feed(b"}\n")
    head, data = _decode(lines.since(head["end"]))  # type: ignore[arg-type]
    assert data == b'{"step": 3}\n' and head["since"] == 24
    head, data = _decode(lines.since(10**9))
    assert data == b"" and head["since"] == head["end"] == 36


def _columns(body: bytes) -> tuple[dict[str, object], dict[str, list[float]]]:
    head, rest = _decode(body)
    assert head["format"] == "columns"
    assert (len(body) - len(rest)) % 8 == 0  # the browser views the floats in place
    n = int(head["n"])  # type: ignore[call-overload]
    cols = {}
    for i, key in enumerate(head["keys"]):  # type: ignore[arg-type]
        cols[key] = list(struct.unpack(f"<{n}d", rest[8 * n * i : 8 * n * (i + 1)]))
    assert len(rest) == 8 * n * len(cols)
    return head, cols


def test_parsed_the_next_open_gets_every_record_as_columns(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    for i in range(50):
        extra = {"lr": 0.1} if i % 10 == 0 else {}
        writer.write(i, {"loss": 1.0 / (i + 1), "note": "text", "ok": True, **extra})
    writer.write(50, {"loss": float("nan")})  # written as text: no point, still a record
    writer.close()
    lines = ProgressLines()
    lines.feed(path.read_bytes())
    assert _decode(lines.since(0))[0]["format"] == "lines"  # not parsed yet
    lines.parse()
    head, cols = _columns(lines.since(0))
    assert head["n"] == 51 and head["end"] == len(path.read_bytes())
    assert "ts" not in cols  # not charted, not sent
    assert cols["step"] == [float(i) for i in range(51)]
    assert math.isnan(cols["loss"][50]) and cols["loss"][1] == 0.5
    assert [i for i, v in enumerate(cols["lr"]) if not math.isnan(v)] == [0, 10, 20, 30, 40]
    assert all(math.isnan(v) for v in cols["note"] + cols["ok"])  # text and bools: no point
    assert _decode(lines.since(10))[0]["format"] == "lines"  # what follows an open: lines
    lines.feed(b'{"step": 51, "loss": 0.25}\n')
    assert _decode(lines.since(0))[0]["format"] == "lines"  # columns behind the lines: not sent
    lines.parse()
    head, cols = _columns(lines.since(0))
    assert head["n"] == 52 and cols["loss"][51] == 0.25 and math.isnan(cols["lr"][51])


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=6), st.integers(1, 30))
def test_columns_parsed_piece_by_piece_equal_one_parse(cuts: list[int], n: int) -> None:
    data = b"".join(
        json.dumps({"step": i, "loss": i / 3, **({"acc": 0.5} if i % 3 else {})}).encode() + b"\n"
        for i in range(n)
    )
    whole, pieces = ProgressLines(), ProgressLines()
    whole.feed(data)
    whole.parse()
    start = 0
    for point in [*sorted({min(c * 7, len(data)) for c in cuts}), len(data)]:
        pieces.feed(data[start:point])
        pieces.parse()
        start = point
    assert pieces.since(0) == whole.since(0)


def test_a_read_under_way_streams_whole_lines_as_they_come() -> None:
    """The page's first request, while the server's read from the box is under way, gets the
    lines as each piece comes in: whole lines only, each once, in order, and the end once the
    read is done."""
    import threading

    lines = ProgressLines(reading=True)
    records = [json.dumps({"step": i, "loss": 1 / (i + 1)}).encode() + b"\n" for i in range(400)]
    raw = b"".join(records)
    got: list[bytes] = []
    first_piece = threading.Event()

    def consume() -> None:
        for part in lines.stream(wait_s=30):
            got.append(part)
            first_piece.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert first_piece.wait(10)  # the header goes out before any byte has come
    pieces = [raw[i : i + 997] for i in range(0, len(raw), 997)]  # cut inside lines
    for piece in pieces:
        lines.feed(piece)
    lines.read_done()
    consumer.join(10)
    assert not consumer.is_alive()
    head, _ = _decode(got[0])
    assert head == {"format": "lines", "since": 0, "end": None, "complete": False}
    body = b"".join(got[1:])
    assert body == raw and all(part.endswith(b"\n") for part in got[1:])
    assert lines.offset == len(raw)
