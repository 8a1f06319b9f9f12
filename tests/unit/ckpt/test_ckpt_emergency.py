"""emergency_save(): the newest checkpoint the spot grace window allows, never a torn one."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from outlive import Checkpointer
from outlive.ckpt import GRACE_ENV
from outlive.testing import DEADLINE_S


def _ckpt(directory: Path, **kwargs: object) -> Checkpointer:
    return Checkpointer(directory, handle_signals=False, **kwargs)  # type: ignore[arg-type]


def test_without_a_known_grace_it_saves_the_current_state_synchronously(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    ckpt.save("older", step=1)
    path = ckpt.emergency_save("newest", step=2)
    assert path == tmp_path / "step-000000000002.ckpt" and path.exists()  # committed on return
    assert ckpt.load(2).state == "newest"


def test_with_no_grace_left_it_keeps_the_last_snapshot_and_starts_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ckpt = _ckpt(tmp_path, grace_s=0.0)  # vast.ai: SIGKILL comes with the notice
    ckpt.save("last snapshot", step=10)  # still persisting, or already committed
    path = ckpt.emergency_save("newer state", step=12)
    assert path == tmp_path / "step-000000000010.ckpt"
    assert ckpt.steps() == [10] and ckpt.load(10).state == "last snapshot"
    assert "keeping the last snapshot instead of step 12" in caplog.text


def test_when_a_save_takes_longer_than_the_grace_it_keeps_the_last_snapshot(
    tmp_path: Path,
) -> None:
    ckpt = _ckpt(tmp_path, grace_s=5.0)  # RunPod spot: about 5 s from TERM to KILL
    ckpt.save("last snapshot", step=10)
    ckpt.flush()
    ckpt.cadence.record_persist(60.0)  # as if a full persist took a minute
    for _ in range(10):
        ckpt.cadence.record_persist(60.0)
    assert ckpt.emergency_save("newer state", step=12) == tmp_path / "step-000000000010.ckpt"
    assert ckpt.steps() == [10]


def test_when_a_save_fits_the_grace_it_saves_the_newest_state(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, grace_s=30.0)
    ckpt.save("last snapshot", step=10)
    ckpt.flush()
    assert ckpt.emergency_save("newer state", step=12) == tmp_path / "step-000000000012.ckpt"
    assert ckpt.load(12).state == "newer state"


def test_the_step_already_snapshotted_is_only_flushed(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, grace_s=0.0)
    ckpt.save("at 7", step=7)
    assert ckpt.emergency_save("ignored: same step", step=7) == tmp_path / "step-000000000007.ckpt"
    assert ckpt.load(7).state == "at 7"


def test_nothing_on_disk_and_no_grace_returns_none(tmp_path: Path) -> None:
    assert _ckpt(tmp_path, grace_s=0.0).emergency_save("x", step=3) is None
    assert os.listdir(tmp_path) == []


def test_the_grace_comes_from_the_environment_and_runs_from_the_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GRACE_ENV, "5")
    ckpt = Checkpointer(tmp_path)
    try:
        assert ckpt.grace_s == 5.0
        os.kill(os.getpid(), signal.SIGUSR2)
        assert ckpt.preempted
        left = ckpt._grace_left_s()
        assert left is not None and 0 < left <= 5.0
    finally:
        ckpt.close()
    monkeypatch.setenv(GRACE_ENV, "soon")
    assert _ckpt(tmp_path).grace_s is None


@pytest.mark.parametrize("grace", [-1.0, float("nan")])
def test_grace_must_be_non_negative(tmp_path: Path, grace: float) -> None:
    with pytest.raises(ValueError, match="grace_s"):
        _ckpt(tmp_path, grace_s=grace)


# The loop a spot job runs: periodic async saves, and on the flag an emergency save then exit 75.
SPOT_LOOP = """
import json, sys, time
from outlive import Checkpointer, progress
ckpt = Checkpointer(sys.argv[1], every_steps=5)
step = 0
while True:
    step += 1
    time.sleep(0.002)
    progress(step)
    if ckpt.due(step):
        ckpt.save({"step": step}, step=step)
    if ckpt.preempted:
        path = ckpt.emergency_save({"step": step}, step=step)
        print(json.dumps({"step": step, "kept": path.name if path else None}), flush=True)
        ckpt.exit_for_requeue()
"""


@pytest.mark.parametrize("grace", ["0", "30"])
def test_a_spot_loop_exits_75_with_the_checkpoint_its_grace_allows(
    tmp_path: Path,
    grace: str,
    start_child: Callable[..., subprocess.Popen[str]],
    child_env: Callable[..., dict[str, str]],
    wait_for_line: Callable[..., str],
) -> None:
    import json

    progress_file = tmp_path / "progress.jsonl"
    env = child_env(OUTLIVE_PROGRESS_FILE=str(progress_file), OUTLIVE_SPOT_GRACE_S=grace)
    proc = start_child(SPOT_LOOP, str(tmp_path / "ck"), env=env)
    wait_for_line(progress_file, lambda line: json.loads(line)["step"] >= 12)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=DEADLINE_S)

    assert proc.returncode == 75, stderr
    report = json.loads(stdout)
    steps = _ckpt(tmp_path / "ck").steps()
    if grace == "0":  # no time for a new save: the last periodic one is what survives
        assert report["kept"] == f"step-{steps[-1]:012d}.ckpt" and steps[-1] % 5 == 0
    else:
        assert report["kept"] == f"step-{report['step']:012d}.ckpt" == f"step-{steps[-1]:012d}.ckpt"
