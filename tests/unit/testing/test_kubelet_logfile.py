"""The process kubelet's CRI-format log records: full and partial lines, stamps, since."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from outlive.testing._kubelet_logfile import parse_records, pump, render, since_stamp, stamp


def test_pumped_output_renders_back_byte_for_byte(tmp_path: Path) -> None:
    log = tmp_path / "log"
    r, w = os.pipe()
    thread = pump(r, log)
    os.write(w, b"one\ntw")
    os.write(w, b"o\r50%\rdone\n\nlast")
    os.close(w)
    thread.join(timeout=30)
    records, rest = parse_records(log.read_bytes())
    assert rest == b""
    assert render(records) == b"one\ntwo\r50%\rdone\n\nlast"


def test_timestamps_prefix_each_line_once() -> None:
    records = [("T1", b"a", True), ("T2", b"b", False), ("T3", b"c", True)]
    assert render(records, timestamps=True) == b"T1 a\nT2 bc\n"


def test_a_record_still_being_written_is_left_for_later() -> None:
    records, rest = parse_records(b"T1 stdout F a\nT2 stdout F b")
    assert (records, rest) == ([("T1", b"a", True)], b"T2 stdout F b")


def test_since_time_compares_with_stamps_as_strings() -> None:
    t = dt.datetime(2026, 12, 3, 13, 0, 0, 123456, tzinfo=dt.timezone.utc)
    assert since_stamp("2026-12-03T13:00:00.123456789Z", None) == stamp(t)
    assert since_stamp("2026-12-03T13:00:00Z", None) == "2026-12-03T13:00:00.000000Z"
    assert since_stamp(None, None) is None
    assert (since_stamp(None, "60") or "") < stamp()
