"""The progress file as the run page receives it: the box's bytes, whole lines only, each line
once however the reads cut the file; a line still being written waits for its newline."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from outlive.ckpt.heartbeat import ProgressWriter
from outlive.ui.runview import ProgressLines


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
    assert head == {"since": 0, "end": len(raw), "complete": False}
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
