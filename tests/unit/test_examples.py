"""examples/train_numpy.py: killed at any step and relaunched, it ends bit-identical."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import outlive.examples
from outlive import Checkpointer
from outlive.testing import DEADLINE_S

SCRIPT = Path(outlive.examples.__file__).resolve().parent / "train_numpy.py"
SRC_DIR = str(Path(outlive.__file__).resolve().parents[1])
STEPS = 60
ARGS = ["--steps", str(STEPS), "--save-every", "7", "--step-sleep-s", "0.004"]


def _env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OUTLIVE_SMOKE", None)
    env["PYTHONPATH"] = SRC_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["OUTLIVE_CKPT_DIR"] = str(run_dir / "ckpt")
    env["OUTLIVE_PROGRESS_FILE"] = str(run_dir / "progress.jsonl")
    env.update(extra)
    return env


def _start(run_dir: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *(args or ARGS)],
        env=_env(run_dir, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (0, 75), f"rc={proc.returncode}\n{stdout}\n{stderr}"
    return proc.returncode, stdout


def _last_step(progress_file: Path) -> int:
    if not progress_file.exists():
        return 0
    steps = [0]
    for line in progress_file.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line still being appended
            steps.append(int(json.loads(line)["step"]))
    return max(steps)


def _wait_for_step(proc: subprocess.Popen[str], progress_file: Path, step: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _last_step(progress_file) < step:
        assert proc.poll() is None, f"exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, f"step {step} not reached"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    """final.npz of an uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference")
    rc, stdout = _finish(_start(run_dir))
    assert rc == 0 and stdout.startswith("done: 60 steps")
    yield (run_dir / "ckpt" / "final.npz").read_bytes()


def _assert_same_final(run_dir: Path, reference: bytes) -> None:
    final = run_dir / "ckpt" / "final.npz"
    ref = np.load(_as_file(run_dir / "ref.npz", reference))
    got = np.load(final)
    assert sorted(got.files) == sorted(ref.files) == ["b1", "b2", "w1", "w2"]
    for name in ref.files:
        assert np.array_equal(got[name], ref[name]), name
    assert final.read_bytes() == reference


def _as_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_steps_then_relaunch_ends_bit_identical(
    tmp_path: Path, reference: bytes, seed: int
) -> None:
    rng = random.Random(seed)
    kill_steps = sorted(rng.sample(range(1, STEPS - 1), 3))
    for step in kill_steps:
        proc = _start(tmp_path)
        _wait_for_step(proc, tmp_path / "progress.jsonl", step)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == -signal.SIGKILL
    rc, stdout = _finish(_start(tmp_path))
    assert rc == 0 and "resumed from step" in stdout, stdout
    _assert_same_final(tmp_path, reference)


def test_sigterm_saves_exits_75_and_the_relaunch_ends_bit_identical(
    tmp_path: Path, reference: bytes
) -> None:
    step = random.Random(3).randrange(5, STEPS - 5)
    proc = _start(tmp_path)
    _wait_for_step(proc, tmp_path / "progress.jsonl", step)
    proc.send_signal(signal.SIGTERM)
    rc, stdout = _finish(proc)
    assert rc == 75, stdout
    saved_step = int(stdout.split("preempted at step ")[1].split(":")[0])
    assert saved_step >= step
    assert Checkpointer(tmp_path / "ckpt", handle_signals=False).steps()[-1] == saved_step

    rc, stdout = _finish(_start(tmp_path))
    assert rc == 0 and f"resumed from step {saved_step}" in stdout, stdout
    _assert_same_final(tmp_path, reference)


def test_relaunching_a_finished_run_converges_to_the_same_result(
    tmp_path: Path, reference: bytes
) -> None:
    assert _finish(_start(tmp_path))[0] == 0
    rc, stdout = _finish(_start(tmp_path))
    assert rc == 0 and f"resumed from step {STEPS}" in stdout
    _assert_same_final(tmp_path, reference)


def test_smoke_mode_runs_two_steps(tmp_path: Path) -> None:
    rc, stdout = _finish(_start(tmp_path, "--step-sleep-s", "0", OUTLIVE_SMOKE="1"))
    assert rc == 0 and stdout.startswith("done: 2 steps"), stdout
    assert _last_step(tmp_path / "progress.jsonl") == 2
    assert (tmp_path / "ckpt" / "final.npz").exists()


def test_runs_in_process_with_the_module_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from outlive.examples import train_numpy

    monkeypatch.setenv("OUTLIVE_CKPT_DIR", str(tmp_path))
    monkeypatch.delenv("OUTLIVE_PROGRESS_FILE", raising=False)
    monkeypatch.delenv("OUTLIVE_SMOKE", raising=False)
    assert train_numpy.main(["--steps", "20", "--save-every", "5", "--step-sleep-s", "0"]) == 0
    assert Checkpointer(tmp_path, handle_signals=False).steps() == [10, 15, 20]
    assert "done: 20 steps" in capsys.readouterr().out
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]
