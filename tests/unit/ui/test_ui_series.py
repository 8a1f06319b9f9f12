"""The progress file as the run page's columns: every record counted once, across chunks cut
anywhere, with gaps where a record lacks a metric; the compact reply reads back exactly."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from outlive.ckpt.heartbeat import ProgressWriter
from outlive.ui.runview import Series


def _decode(body: bytes) -> tuple[dict[str, object], dict[str, list[float]]]:
    hlen = int.from_bytes(body[:4], "little")
    head = json.loads(body[4 : 4 + hlen])
    off = 4 + hlen
    assert off % 8 == 0  # the browser views the floats in place (Float64Array)
    cols: dict[str, list[float]] = {}
    for key in head["keys"]:
        n = head["count"]
        cols[key] = list(struct.unpack(f"<{n}d", body[off : off + 8 * n]))
        off += 8 * n
    assert off == len(body)
    return head, cols


def test_the_writer_s_own_file_reads_back_record_for_record(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    for i in range(50):
        extra = {"lr": 0.1} if i % 10 == 0 else {}
        writer.write(i, {"loss": 1.0 / (i + 1), "note": "text", **extra})
    writer.write(50, {"loss": float("nan")})  # written as text: no point, still a record
    writer.close()
    series = Series()
    series.feed(path.read_bytes())
    assert series.n == 51
    head, cols = _decode(series.since(0))
    assert head["n"] == 51 and head["count"] == 51
    assert "ts" not in cols  # not charted, not sent
    assert cols["step"] == [float(i) for i in range(51)]
    assert math.isnan(cols["loss"][50]) and cols["loss"][1] == 0.5
    assert [i for i, v in enumerate(cols["lr"]) if not math.isnan(v)] == [0, 10, 20, 30, 40]
    assert all(math.isnan(v) for v in cols["note"])


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=6), st.integers(1, 30))
def test_chunks_cut_anywhere_give_the_same_columns(cuts: list[int], n: int) -> None:
    data = b"".join(
        json.dumps(
            {"ts": 1.0, "step": i, "loss": i / 3, **({"acc": 0.5} if i % 3 else {})}
        ).encode()
        + b"\n"
        for i in range(n)
    )
    whole = Series()
    whole.feed(data)
    pieces = Series()
    points = sorted({min(c * 7, len(data)) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        pieces.feed(data[start:point])
        start = point
    assert pieces.n == whole.n == n
    assert pieces.since(0) == whole.since(0)
    head, cols = _decode(whole.since(n - 1))
    assert head["since"] == n - 1 and cols["step"] == [float(n - 1)]


def test_a_torn_last_line_waits_for_its_newline() -> None:
    series = Series()
    series.feed(b'{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert series.n == 1
    series.feed(b'ss": 1.0}\nnot json\n')
    assert series.n == 2
