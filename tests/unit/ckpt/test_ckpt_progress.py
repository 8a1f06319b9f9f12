"""progress(): one flushed JSON line per call; the file's mtime is the heartbeat."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from outlive import progress
from outlive.ckpt import PROGRESS_FILE_ENV, ProgressWriter


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_call_appends_one_line_that_is_on_disk_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(path))
    before_s = time.time()
    progress(1, loss=0.5)
    assert _records(path) == [{"ts": pytest.approx(before_s, abs=2), "step": 1, "loss": 0.5}]
    progress(2, loss=0.25, lr=1e-3, phase="warmup")
    records = _records(path)
    assert [r["step"] for r in records] == [1, 2]
    assert list(records[1]) == ["ts", "step", "loss", "lr", "phase"]


def test_mtime_moves_with_each_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(path))
    progress(1)
    os.utime(path, (0, 0))
    progress(2)
    assert path.stat().st_mtime > 1e9


def test_without_the_env_variable_it_is_a_no_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PROGRESS_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress(1, loss=1.0)
    assert os.listdir(tmp_path) == []


def test_numpy_scalars_and_non_finite_values_become_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    writer = ProgressWriter(path)
    writer.write(
        np.int64(3),  # type: ignore[arg-type]
        {"f32": np.float32(0.5), "nan": float("nan"), "inf": np.float64("-inf"), "ok": np.bool_(1)},
    )
    writer.close()
    line = path.read_text()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line)["step"] == 3
    assert {k: v for k, v in json.loads(line).items() if k != "ts"} == {
        "step": 3,
        "f32": 0.5,
        "nan": "nan",
        "inf": "-inf",
        "ok": True,
    }


def test_reserved_metric_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        ProgressWriter(tmp_path / "p.jsonl").write(1, {"ts": 5})


def test_changing_the_env_variable_switches_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(tmp_path / "a.jsonl"))
    progress(1)
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(tmp_path / "b.jsonl"))
    progress(2)
    assert [r["step"] for r in _records(tmp_path / "a.jsonl")] == [1]
    assert [r["step"] for r in _records(tmp_path / "b.jsonl")] == [2]


def test_an_unwritable_progress_file_is_logged_once_and_never_stops_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ProgressWriter(tmp_path / "missing-dir" / "p.jsonl")
    with caplog.at_level(logging.WARNING, logger="outlive.ckpt"):
        writer.write(1, {})
        writer.write(2, {})
    assert caplog.text.count("cannot be written") == 1


def test_lines_from_concurrent_processes_never_interleave(
    tmp_path: Path, progress_from_ranks: Callable[[Path, str, float], None]
) -> None:
    path = tmp_path / "p.jsonl"
    progress_from_ranks(path, "pad='x' * 2000", 30)
    records = _records(path)
    assert len(records) == 1200
    for rank in range(4):
        assert [r["step"] for r in records if r["rank"] == rank] == list(range(300))
