"""SIGKILL a process that saves in a tight loop at hundreds of random moments; every time, the
newest committed checkpoint must load and verify, and no committed step may be lost."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

from outlive import Checkpointer
from outlive.testing import DEADLINE_S

# Run with -S (no site-packages): the core must work where only the shipped files exist.
WRITER = """
import hashlib, os, sys
from outlive import Checkpointer
ckpt = Checkpointer(sys.argv[1], keep_last=3, handle_signals=False)
step = int(sys.argv[3])  # the parent has just verified load_latest(); resume after it
blob = os.urandom(int(sys.argv[2]))
digest = hashlib.sha256(blob).hexdigest()
print("ready", flush=True)
while True:
    step += 1
    ckpt.save({"step": step, "blob": blob, "sha256": digest}, step=step)
"""

KILLS = 200
LANES = 2


def _check_state(state: dict[str, object], step: int) -> None:
    blob = state["blob"]
    assert isinstance(blob, bytes) and state["step"] == step
    assert hashlib.sha256(blob).hexdigest() == state["sha256"]


def _kill_lane(directory: Path, kills: int, seed: str, env: dict[str, str]) -> tuple[int, int]:
    """Kill ``kills`` writers on one directory; returns (last committed step, kills mid-write)."""
    rng = random.Random(seed)
    last_step = 0
    mid_write = 0
    for kill in range(kills):
        where = f"kill {kill} (lane seed {seed})"
        size = rng.randint(1, 4) * 1024 * 1024
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", WRITER, str(directory), str(size), str(last_step)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Time the kill from the first save, not from exec: a loaded machine starts slowly.
            assert proc.stdout is not None
            ready = proc.stdout.readline()
            if ready == b"ready\n":
                time.sleep(rng.uniform(0.0, 0.1))
        finally:
            proc.send_signal(signal.SIGKILL)
            stderr = proc.communicate(timeout=DEADLINE_S)[1].decode(errors="replace")
        assert ready == b"ready\n", f"{where}: writer did not start: {ready!r} {stderr}"
        assert proc.returncode == -signal.SIGKILL, f"{where}: writer died on its own: {stderr}"

        mid_write += any(directory.glob(f".*.tmp-{proc.pid}-*"))
        ckpt = Checkpointer(directory, handle_signals=False)
        restored = ckpt.load_latest()
        if last_step == 0 and restored is None:
            continue  # killed before its first commit
        assert restored is not None, f"{where}: no loadable checkpoint after step {last_step}"
        assert restored.step >= last_step, f"{where}: committed step {last_step} was lost"
        assert restored.step == max(ckpt.steps()), f"{where}: newest committed file is corrupt"
        _check_state(restored.state, restored.step)
        for step in ckpt.steps():
            _check_state(ckpt.load(step).state, step)
        last_step = restored.step
    return last_step, mid_write


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_bad_latest_checkpoint(
    tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    seed = random.randrange(2**32)
    # Independent lanes (one directory each) overlap one writer's start-up with another's fsync.
    with ThreadPoolExecutor(LANES) as pool:
        futures = [
            pool.submit(
                _kill_lane, tmp_path / f"lane{i}", KILLS // LANES, f"{seed}-{i}", child_env()
            )
            for i in range(LANES)
        ]
        results = [f.result() for f in futures]

    last_steps = [r[0] for r in results]
    mid_write = sum(r[1] for r in results)
    assert min(last_steps) >= KILLS // LANES // 4, f"too few commits to mean anything: {results}"
    # The kills must have landed inside writes, or this test proved nothing about torn files.
    assert mid_write >= 10, f"only {mid_write} kills hit a write (seed {seed})"
    print(f"{KILLS} kills, {mid_write} mid-write, last steps {last_steps}")
