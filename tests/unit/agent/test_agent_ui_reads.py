"""The agent's reads behind the dashboard: ``tail`` of the progress file (and of nothing else
but the run's two append-only files), and ``ckpts``, the committed checkpoints of a durable dir."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from outlive import wire
from outlive.agent.box import verbs
from outlive.ckpt.fmt import checkpoint_name


def test_tail_reads_the_progress_file_by_offset_and_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / wire.STDOUT_LOG).write_text("log line\n")
    (tmp_path / wire.PROGRESS_JSONL).write_text('{"step": 1}\n{"step": 2}\n')
    (tmp_path / wire.RUN_JSON).write_text("{}")
    reply = verbs.answer(
        "tail", {"run_dir": str(tmp_path), "offset": 12, "file": wire.PROGRESS_JSONL}
    )
    assert reply["ok"], reply
    assert base64.b64decode(reply["result"]["data_b64"]) == b'{"step": 2}\n'
    assert reply["result"]["offset"] == reply["result"]["size"] == 24
    plain = verbs.answer("tail", {"run_dir": str(tmp_path), "lines": 5})
    assert base64.b64decode(plain["result"]["data_b64"]) == b"log line\n"
    for other in (wire.RUN_JSON, "../etc/passwd", "/etc/passwd"):
        refused = verbs.answer("tail", {"run_dir": str(tmp_path), "file": other})
        assert refused["ok"] is False and "tail reads only" in refused["error"]


def test_ckpts_lists_committed_checkpoints_newest_first(tmp_path: Path) -> None:
    for step, size in ((20, 3), (40, 5), (100, 7)):
        (tmp_path / checkpoint_name(step)).write_bytes(b"x" * size)
    (tmp_path / f".{checkpoint_name(120)}.tmp-123-abcd").write_bytes(b"partial")
    (tmp_path / "final.npz").write_bytes(b"not a checkpoint")
    os.utime(tmp_path / checkpoint_name(20), (1_000_000, 1_000_000))
    reply = verbs.answer("ckpts", {"ckpt_dir": str(tmp_path)})
    assert reply["ok"], reply
    found = reply["result"]["checkpoints"]
    assert [(c["step"], c["size_bytes"]) for c in found] == [(100, 7), (40, 5), (20, 3)]
    assert found[2]["mtime"] == 1_000_000
    missing = verbs.answer("ckpts", {"ckpt_dir": str(tmp_path / "nope")})
    assert missing["result"] == {
        "ckpt_dir": str(tmp_path / "nope"), "checkpoints": [], "exists": False,
    }  # fmt: skip


def test_tail_of_the_progress_frames_says_how_long_the_lines_were_before(tmp_path: Path) -> None:
    (tmp_path / wire.RUN_JSON).write_text("{}")
    ask = {"run_dir": str(tmp_path), "offset": 0, "file": wire.PROGRESS_BIN, "raw": True}
    none = verbs.answer("tail", ask)["result"]  # no progress yet: no frames, no lines
    assert (none["size"], none["lines_size"], none["data"]) == (0, 0, b"")
    (tmp_path / wire.PROGRESS_JSONL).write_text('{"step": 1}\n')
    (tmp_path / wire.PROGRESS_BIN).write_bytes(b"frames")
    got = verbs.answer("tail", ask)["result"]
    assert (got["data"], got["offset"], got["lines_size"]) == (b"frames", 6, 12)
    lines = verbs.answer("tail", {**ask, "file": wire.PROGRESS_JSONL})["result"]
    assert "lines_size" not in lines  # only the frames' read says it
