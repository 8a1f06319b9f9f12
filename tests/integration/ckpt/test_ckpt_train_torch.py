"""examples/train_torch.py: killed by SIGKILL or preempted by SIGTERM at random steps and
relaunched with the identical command, it ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

import outlive.examples
from outlive import Checkpointer
from outlive.testing import DEADLINE_S

SCRIPT = Path(outlive.examples.__file__).resolve().parent / "train_torch.py"
STEPS = 48  # three epochs of 16 batches: kills land mid-epoch and on epoch boundaries
ARGS = ["--steps", str(STEPS), "--save-every", "5", "--step-sleep-s", "0.02"]

# Each case starts several interpreters that import torch (a few seconds each).
pytestmark = pytest.mark.slow

EnvFactory = Callable[..., dict[str, str]]


def _start(run_dir: Path, env: EnvFactory, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *(args or ARGS)],
        env=env(
            OUTLIVE_CKPT_DIR=str(run_dir / "ckpt"),
            OUTLIVE_PROGRESS_FILE=str(run_dir / "progress.jsonl"),
            **extra,
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode in (0, 75), f"rc={proc.returncode}\n{stdout}\n{stderr}"
    return proc.returncode, stdout


def _last_step(progress_file: Path) -> int:
    steps = [0]
    if progress_file.exists():
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


def _digest(stdout: str) -> str:
    match = re.search(r"sha256 ([0-9a-f]{64})", stdout)
    assert match, stdout
    return match.group(1)


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(run_dir / "ckpt" / "final.pt", weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "ema") for k, v in saved[part].items()}


def _assert_same_end(
    run_dir: Path, stdout: str, reference: tuple[str, dict[str, torch.Tensor]]
) -> None:
    digest, weights = reference
    assert _digest(stdout) == digest
    got = _final_weights(run_dir)
    assert sorted(got) == sorted(weights)
    for name, value in weights.items():
        a = got[name].reshape(-1).view(torch.uint8)
        assert torch.equal(a, value.reshape(-1).view(torch.uint8)), name
    assert not list((run_dir / "ckpt").glob(".*.tmp-*")), "a temp file was left behind"


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, child_env: EnvFactory
) -> tuple[str, dict[str, torch.Tensor]]:
    """Digest and final weights of an uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference")
    rc, stdout = _finish(_start(run_dir, child_env, "--steps", str(STEPS), "--step-sleep-s", "0"))
    assert rc == 0 and stdout.startswith(f"done: {STEPS} steps"), stdout
    return _digest(stdout), _final_weights(run_dir)


@pytest.mark.parametrize("seed", [1])
def test_sigkill_at_random_steps_then_relaunch_ends_bit_identical(
    tmp_path: Path,
    reference: tuple[str, dict[str, torch.Tensor]],
    child_env: EnvFactory,
    seed: int,
) -> None:
    rng = random.Random(seed)
    for step in sorted(rng.sample(range(2, STEPS - 2), 2)):
        proc = _start(tmp_path, child_env)
        _wait_for_step(proc, tmp_path / "progress.jsonl", step)
        proc.send_signal(signal.SIGKILL)  # possibly mid-persist: the async save dies with it
        proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == -signal.SIGKILL
    rc, stdout = _finish(_start(tmp_path, child_env))
    assert rc == 0 and "resumed from step" in stdout, stdout
    _assert_same_end(tmp_path, stdout, reference)


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_sigterm_saves_at_the_safe_point_exits_75_and_resumes_bit_identical(
    tmp_path: Path,
    reference: tuple[str, dict[str, torch.Tensor]],
    child_env: EnvFactory,
    mode: str,
) -> None:
    step = random.Random(mode).randrange(3, STEPS - 3)
    args = [*ARGS, "--sync"] if mode == "sync" else ARGS
    proc = _start(tmp_path, child_env, *args)
    _wait_for_step(proc, tmp_path / "progress.jsonl", step)
    proc.send_signal(signal.SIGTERM)
    rc, stdout = _finish(proc)
    assert rc == 75, stdout
    saved_step = int(stdout.split("preempted at step ")[1].split(":")[0])
    assert saved_step >= step
    assert Checkpointer(tmp_path / "ckpt", handle_signals=False).steps()[-1] == saved_step

    rc, stdout = _finish(_start(tmp_path, child_env, *args))
    assert rc == 0 and f"resumed from step {saved_step} " in stdout, stdout
    _assert_same_end(tmp_path, stdout, reference)


def test_daly_cadence_from_the_mtbf_then_kill_and_term_still_end_bit_identical(
    tmp_path: Path, reference: tuple[str, dict[str, torch.Tensor]], child_env: EnvFactory
) -> None:
    # A tiny MTBF makes Daly's interval a few steps long, so the tuned cadence really saves.
    args = ["--steps", str(STEPS), "--save-every", "0", "--step-sleep-s", "0.02"]
    proc = _start(tmp_path, child_env, *args, OUTLIVE_MTBF_S="2")
    _wait_for_step(proc, tmp_path / "progress.jsonl", 20)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=DEADLINE_S)
    assert Checkpointer(tmp_path / "ckpt", handle_signals=False).steps()  # due() did save

    proc = _start(tmp_path, child_env, *args, OUTLIVE_MTBF_S="2")
    _wait_for_step(proc, tmp_path / "progress.jsonl", 30)
    proc.send_signal(signal.SIGTERM)
    assert _finish(proc)[0] == 75
    rc, stdout = _finish(_start(tmp_path, child_env, *args, OUTLIVE_MTBF_S="2"))
    assert rc == 0 and "resumed from step" in stdout
    _assert_same_end(tmp_path, stdout, reference)
