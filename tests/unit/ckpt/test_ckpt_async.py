"""Two-phase saves: a consistent snapshot in save(), the persist in the background, one in flight,
errors raised on the next call, and nothing lost when the process exits right after save()."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from outlive import Checkpointer
from outlive.ckpt import SaveStats, fmt
from outlive.errors import CheckpointError


def _ckpt(directory: Path, **kwargs: object) -> Checkpointer:
    return Checkpointer(directory, handle_signals=False, **kwargs)  # type: ignore[arg-type]


def test_the_snapshot_is_taken_in_save_so_later_mutation_does_not_leak_in(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    weights = np.zeros((256, 256))
    history = [1, 2]
    ckpt.save({"w": weights, "history": history}, step=1)
    weights += 1.0  # the training loop goes on in place while the persist runs
    history.append(3)
    ckpt.flush()

    restored = _ckpt(tmp_path).load_latest()
    assert restored is not None
    assert not restored.state["w"].any() and restored.state["history"] == [1, 2]


def test_sync_save_is_committed_when_it_returns(tmp_path: Path) -> None:
    path = _ckpt(tmp_path, sync=True).save({"a": np.arange(5)}, step=2)
    assert path.exists() and fmt.verify(path.read_bytes(), expected_step=2)[0] == 2
    path = _ckpt(tmp_path).save({"a": 1}, step=3, sync=True)  # per call, on an async one
    assert path.exists()


def test_a_new_save_waits_for_the_one_in_flight(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, keep_last=None)
    for step in range(1, 6):
        ckpt.save({"blob": os.urandom(256 * 1024), "step": step}, step=step)
        # Each save returns only after the previous persist committed: at most one in flight.
        assert (tmp_path / fmt.checkpoint_name(step - 1)).exists() or step == 1
    assert ckpt.steps() == [1, 2, 3, 4, 5]


def test_reads_on_the_same_checkpointer_see_its_own_saves(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save("x", step=7)
    assert ckpt.steps() == [7]
    restored = ckpt.load_latest()
    assert restored is not None and restored.state == "x"
    assert ckpt.load(7).state == "x"


def test_last_save_reports_stall_then_persist_time(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    assert ckpt.last_save is None
    ckpt.save({"w": np.ones(1000)}, step=4)
    ckpt.flush()
    stats = ckpt.last_save
    assert isinstance(stats, SaveStats) and stats.step == 4
    assert stats.size_bytes == (tmp_path / fmt.checkpoint_name(4)).stat().st_size
    assert stats.stall_s >= 0 and stats.persist_s is not None and stats.persist_s >= 0
    assert ckpt.cadence.persist_s is not None  # C measured for due()


# A child that saves a big state and leaves at once, by each way a script ends.
EXIT_RIGHT_AFTER_SAVE = """
import os, sys
from outlive import Checkpointer
ckpt = Checkpointer(sys.argv[1], handle_signals=False)
ckpt.save({"blob": b"z" * (32 * 1024 * 1024)}, step=9)
how = sys.argv[2]
if how == "exit":
    sys.exit(75)
if how == "raise":
    raise RuntimeError("the job crashes right after saving")
"""


@pytest.mark.parametrize("how", ["return", "exit", "raise"])
def test_process_exit_right_after_an_async_save_leaves_it_durable(
    tmp_path: Path, how: str, child_env: Callable[..., dict[str, str]]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXIT_RIGHT_AFTER_SAVE, str(tmp_path), how],
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == {"return": 0, "exit": 75, "raise": 1}[how], result.stderr
    restored = _ckpt(tmp_path).load_latest()
    assert restored is not None and restored.step == 9
    assert restored.state["blob"] == b"z" * (32 * 1024 * 1024)


# RLIMIT_FSIZE makes the kernel fail the background write itself (EFBIG).
FAILING_PERSIST = """
import resource, signal, sys
from outlive import Checkpointer
from outlive.errors import CheckpointError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
c = Checkpointer(sys.argv[1], handle_signals=False, keep_last=1)
c.save(b'x' * 1000, step=1)
c.flush()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
c.save(b'y' * 1_000_000, step=2)   # returns: the persist fails in the background
if sys.argv[2] == "next-call":
    try:
        c.save(b'x' * 10, step=3)   # waits for the failed persist and raises its error
    except CheckpointError as exc:
        print("raised by the next save:", type(exc).__name__, exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    c.save(b'x' * 10, step=3)       # raised once; saving goes on
    c.close()
"""


def test_a_failed_persist_is_raised_by_the_next_call_and_keeps_the_previous(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAILING_PERSIST, str(tmp_path), "next-call"],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("raised by the next save: CheckpointError writing"), (
        result.stdout
    )
    assert "previous checkpoint is intact" in result.stdout
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert _ckpt(tmp_path).steps() == [3]


def test_a_failed_persist_nobody_asked_about_is_logged_at_exit(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAILING_PERSIST, str(tmp_path), "exit"],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "saving checkpoint step 2" in result.stderr and "never reported" in result.stderr
    assert os.listdir(tmp_path) == [fmt.checkpoint_name(1)]  # no tmp, the previous intact


def test_close_raises_a_failed_persist_but_with_block_keeps_the_original_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import outlive.ckpt.core as core

    def broken_commit(*args: object, **kwargs: object) -> Path:
        raise CheckpointError("writing failed (simulated)")

    monkeypatch.setattr(core, "commit_file", broken_commit)
    ckpt = _ckpt(tmp_path)
    ckpt.save("a", step=1)
    with pytest.raises(CheckpointError, match="simulated"):
        ckpt.close()

    with (
        caplog.at_level(logging.ERROR, logger="outlive.ckpt"),
        pytest.raises(KeyError, match="the body's own"),
        _ckpt(tmp_path) as failing,
    ):
        failing.save("b", step=2)
        raise KeyError("the body's own error")
    assert "simulated" in caplog.text


def test_version_1_files_still_load(tmp_path: Path) -> None:
    payload = pickle.dumps({"old": True}, protocol=4)
    common = fmt._COMMON.pack(fmt.MAGIC, 1, 0, 5, len(payload))
    import hashlib

    digest = hashlib.sha256(common + payload).digest()
    (tmp_path / fmt.checkpoint_name(5)).write_bytes(common + digest + payload)

    restored = _ckpt(tmp_path).load_latest()
    assert restored is not None and restored.step == 5 and restored.state == {"old": True}


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.asfortranarray(np.arange(12).reshape(3, 4)),
        np.arange(20)[::3],  # not contiguous
        np.array(3.5),  # 0-d
        np.empty((0, 4), dtype=np.float32),
        np.array(["a", "bcd"]),
        np.array([1, 2], dtype=">i4"),  # big-endian
        np.array(["2024-01-01"], dtype="datetime64[ns]"),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),  # structured: plain pickle
        np.array([1, "x", None], dtype=object),  # objects: plain pickle
    ],
    ids=lambda a: f"{a.dtype.str}-{a.shape}",
)
def test_numpy_arrays_round_trip_exactly(tmp_path: Path, array: np.ndarray) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save({"a": array, "same": array}, step=1)
    restored = ckpt.load(1).state
    got = restored["a"]
    assert got.dtype == array.dtype and got.shape == array.shape
    assert got.tobytes() == array.tobytes() if array.dtype != object else list(got) == list(array)
    assert got.flags.f_contiguous == array.flags.f_contiguous or array.ndim < 2
    assert got.flags.writeable and restored["same"] is got  # one array, loaded once


def test_repeated_saves_reuse_buffers_and_stay_exact(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, keep_last=None)
    weights = np.zeros(10_000)
    for step in range(1, 5):
        weights += step
        extra = np.full(step, step)  # a shape that changes between saves
        ckpt.save({"w": weights, "extra": extra}, step=step)
    for step in range(1, 5):
        state = ckpt.load(step).state
        assert (state["w"] == sum(range(1, step + 1))).all()
        assert state["extra"].tolist() == [step] * step
