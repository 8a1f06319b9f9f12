"""Checkpointer save / load / prune / verify behaviour on a real filesystem."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from outlive import Checkpointer
from outlive.ckpt import CKPT_DIR_ENV, REQUEUE_EXIT_CODE, Restored, fmt
from outlive.errors import CheckpointError


def _ckpt(directory: Path | None, **kwargs: object) -> Checkpointer:
    return Checkpointer(directory, handle_signals=False, **kwargs)  # type: ignore[arg-type]


def _tmp_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if ".tmp-" in n)


def test_save_then_load_latest_round_trips_state_step_and_path(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    weights = np.arange(12.0).reshape(3, 4)
    state = {"w": weights, "step": 7, "name": "x'; echo $(id)\n✓"}
    path = ckpt.save(state, step=7)
    ckpt.flush()  # async by default: committed once flushed (or at close / exit)

    restored = _ckpt(tmp_path).load_latest()

    assert isinstance(restored, Restored)
    assert restored.step == 7
    assert restored.path == path == tmp_path / "step-000000000007.ckpt"
    assert np.array_equal(restored.state["w"], weights)
    assert restored.state["name"] == state["name"]
    assert "state=" not in repr(restored)  # a multi-GB state must not end up in a log line


def test_load_latest_is_none_when_nothing_was_saved(tmp_path: Path) -> None:
    assert _ckpt(tmp_path / "fresh").load_latest() is None
    assert _ckpt(tmp_path / "fresh").steps() == []


def test_directory_is_created_with_parents_and_defaults_to_env_then_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "a b" / "c'd" / "ckpt"
    assert _ckpt(nested).directory == nested and nested.is_dir()

    monkeypatch.setenv(CKPT_DIR_ENV, str(tmp_path / "from-env"))
    assert _ckpt(None).directory == tmp_path / "from-env"

    monkeypatch.delenv(CKPT_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    assert _ckpt(None).directory == tmp_path / "checkpoints"
    assert (tmp_path / "checkpoints").is_dir()


def test_directory_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a directory")
    with pytest.raises(CheckpointError, match="not a directory"):
        _ckpt(tmp_path / "taken")


def test_file_starts_with_the_format_header(tmp_path: Path) -> None:
    path = _ckpt(tmp_path).save({"a": 1}, step=3, sync=True)
    data = path.read_bytes()
    assert data.startswith(fmt.MAGIC)
    step, payload = fmt.verify(data, expected_step=3)
    assert step == 3 and len(payload) == len(data) - fmt.HEADER_SIZE


def test_steps_lists_committed_steps_only_in_ascending_order(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, keep_last=None)
    for step in (30, 2, 1000000000000, 11):
        ckpt.save({"step": step}, step=step)
    (tmp_path / "final.npz").write_bytes(b"x")
    (tmp_path / "step-12.ckpt").write_bytes(b"x")  # not our name: too few digits
    (tmp_path / ".step-000000000099.ckpt.tmp-999999999-ab").write_bytes(b"torn")

    assert ckpt.steps() == [2, 11, 30, 1000000000000]
    assert (tmp_path / "step-1000000000000.ckpt").exists()


def test_keep_last_keeps_the_newest_and_the_one_just_committed(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, keep_last=2)
    for step in range(1, 6):
        ckpt.save({"step": step}, step=step)
    assert ckpt.steps() == [4, 5]

    # Saving an older step (a resume from before a corrupt newest one) never prunes itself.
    ckpt.save({"step": 3}, step=3)
    assert ckpt.steps() == [3, 5]
    assert _ckpt(tmp_path, keep_last=1).save({"step": 2}, step=2, sync=True)
    assert ckpt.steps() == [2]


def test_keep_last_none_keeps_everything(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, keep_last=None)
    for step in range(6):
        ckpt.save(step, step=step)
    assert ckpt.steps() == list(range(6))


def test_saving_a_step_again_replaces_it(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save("first", step=4)
    ckpt.save("second", step=4)
    restored = ckpt.load_latest()
    assert restored is not None and restored.state == "second" and ckpt.steps() == [4]


@pytest.mark.parametrize("keep_last", [0, -1, True])
def test_keep_last_must_be_positive(tmp_path: Path, keep_last: int) -> None:
    with pytest.raises(ValueError, match="keep_last"):
        _ckpt(tmp_path, keep_last=keep_last)


@pytest.mark.parametrize("step", [-1, 2**63, 1.5, True, "3"])
def test_step_must_be_a_non_negative_int(tmp_path: Path, step: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        _ckpt(tmp_path).save({}, step=step)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_numpy_integer_steps_are_accepted(tmp_path: Path) -> None:
    path = _ckpt(tmp_path).save({}, step=np.int64(12))  # type: ignore[arg-type]
    assert path.name == "step-000000000012.ckpt"


def test_requeue_exit_code_is_ex_tempfail(tmp_path: Path) -> None:
    assert _ckpt(tmp_path).requeue_exit_code == REQUEUE_EXIT_CODE == 75


def test_stray_tmp_files_are_ignored_by_load_and_removed_by_the_next_save(
    tmp_path: Path,
) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save({"good": True}, step=1)
    dead = tmp_path / ".step-000000000002.ckpt.tmp-999999999-deadbeef"
    own_pid = tmp_path / f".step-000000000003.ckpt.tmp-{os.getpid()}-0a0b"  # restarted container
    live = tmp_path / f".step-000000000004.ckpt.tmp-{os.getppid()}-cafe"  # another live writer
    for path in (dead, own_pid, live):
        path.write_bytes(fmt.MAGIC + b"half a checkpoint")

    restored = ckpt.load_latest()
    assert restored is not None and restored.step == 1 and ckpt.steps() == [1]

    ckpt.save({"good": True}, step=5)
    ckpt.flush()
    assert _tmp_files(tmp_path) == [live.name]


@pytest.mark.parametrize(
    "damage",
    ["flip_payload", "flip_digest", "flip_step", "flip_magic", "truncate", "append", "empty"],
)
def test_corrupt_newest_falls_back_to_the_previous_one(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save({"step": 10, "blob": os.urandom(4096)}, step=10)
    newest = ckpt.save({"step": 20, "blob": os.urandom(4096)}, step=20)
    ckpt.flush()
    data = bytearray(newest.read_bytes())
    offsets = {"flip_payload": len(data) - 100, "flip_digest": 40, "flip_step": 19, "flip_magic": 1}
    if damage in offsets:
        data[offsets[damage]] ^= 0x01
    elif damage == "truncate":
        del data[len(data) // 2 :]
    elif damage == "append":
        data += b"\0"
    else:
        data.clear()
    newest.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="outlive.ckpt"):
        restored = _ckpt(tmp_path).load_latest()

    assert restored is not None and restored.step == 10 and restored.state["step"] == 10
    assert "skipping corrupt checkpoint" in caplog.text and newest.name in caplog.text
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load(20)


def test_a_file_renamed_to_another_step_is_rejected(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, keep_last=None)
    ckpt.save("five", step=5)
    ckpt.save("six", step=6)
    os.replace(tmp_path / "step-000000000005.ckpt", tmp_path / "step-000000000009.ckpt")
    restored = ckpt.load_latest()
    assert restored is not None and restored.step == 6


def test_all_corrupt_means_none(tmp_path: Path) -> None:
    (tmp_path / "step-000000000001.ckpt").write_bytes(b"garbage")
    assert _ckpt(tmp_path).load_latest() is None


def test_unpicklable_state_raises_and_leaves_nothing_behind(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save("previous", step=1)
    with pytest.raises(CheckpointError, match="cannot be pickled"):
        ckpt.save({"fn": lambda: 0}, step=2)
    assert os.listdir(tmp_path) == ["step-000000000001.ckpt"]


def test_verified_checkpoint_whose_class_is_gone_raises_instead_of_falling_back(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    code = (
        "import sys\n"
        "from outlive import Checkpointer\n"
        "class Model: pass\n"
        "c = Checkpointer(sys.argv[1], handle_signals=False)\n"
        "c.save('plain', step=1)\n"
        "c.save(Model(), step=2)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=child_env(), check=True)
    with pytest.raises(CheckpointError, match="cannot be unpickled"):
        _ckpt(tmp_path).load_latest()


def test_a_failed_write_keeps_the_previous_checkpoint_and_no_tmp(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    # RLIMIT_FSIZE makes the kernel fail the write itself (EFBIG) halfway through the file.
    code = (
        "import resource, signal, sys\n"
        "from outlive import Checkpointer\n"
        "from outlive.errors import CheckpointError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "c = Checkpointer(sys.argv[1], handle_signals=False, keep_last=1)\n"
        "c.save(b'x' * 1000, step=1)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n"
        "    c.save(b'y' * 1_000_000, step=2)\n"
        "    c.flush()  # an async persist's error is raised by the next call\n"
        "except CheckpointError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("CheckpointError writing"), result.stdout + result.stderr
    assert "previous checkpoint is intact" in result.stdout
    assert os.listdir(tmp_path) == ["step-000000000001.ckpt"]
    restored = _ckpt(tmp_path).load_latest()
    assert restored is not None and restored.state == b"x" * 1000


def test_checkpoint_written_by_one_process_loads_in_another_byte_for_byte(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    blob = os.urandom(100_000)
    (tmp_path / "blob").write_bytes(blob)
    code = (
        "import sys, pathlib\n"
        "from outlive import Checkpointer\n"
        "d = pathlib.Path(sys.argv[1])\n"
        "Checkpointer(d / 'ck', handle_signals=False).save((d / 'blob').read_bytes(), step=42)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=child_env(), check=True)
    restored = _ckpt(tmp_path / "ck").load_latest()
    assert restored is not None and restored.step == 42
    assert hashlib.sha256(restored.state).digest() == hashlib.sha256(blob).digest()


@pytest.mark.parametrize("fadvise_fails", [False, True])
def test_write_back_is_started_along_the_way_and_is_only_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fadvise_fails: bool
) -> None:
    from outlive.ckpt import durable

    if not hasattr(os, "posix_fadvise"):
        pytest.skip("no posix_fadvise on this platform")
    calls: list[tuple[int, int]] = []

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length))
        if fadvise_fails:
            raise OSError(22, "Invalid argument")

    monkeypatch.setattr(durable, "WRITEBACK_EVERY_BYTES", 64 * 1024)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    rng = np.random.default_rng(1)
    state = {f"w{i}": rng.random(10_000) for i in range(12)}  # 12 chunks of 80 kB
    path = _ckpt(tmp_path).save(state, step=1, sync=True)

    size = path.stat().st_size
    assert len(calls) >= 6 and calls[0][0] == fmt.HEADER_SIZE
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(calls))  # contiguous ranges
    assert calls[-1][0] + calls[-1][1] <= size
    restored = _ckpt(tmp_path).load_latest()
    assert restored is not None
    assert all(np.array_equal(restored.state[k], v) for k, v in state.items())
