"""Preemption signals raise a flag; the loop saves at its safe point and exits 75."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Callable

import pytest

from outlive import Checkpointer
from outlive.testing import DEADLINE_S

# A training-shaped loop: it reports each step, and saves only at its safe point. The handler
# must not save: the saved state says so, and `saves` counts every save the process made.
LOOP = """
    import json, os, sys, time
    from outlive import Checkpointer, progress
    ckpt = Checkpointer(sys.argv[1], keep_last=None)
    step, saves = 0, 0
    while True:
        step += 1
        time.sleep(0.002)
        progress(step)
        if ckpt.preempted:
            saves += 1
            ckpt.save({"step": step, "saves": saves, "signal": ckpt.preempt_signal}, step=step)
            print(json.dumps({"step": step, "steps_on_disk": ckpt.steps()}), flush=True)
            sys.exit(ckpt.requeue_exit_code)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2])
def test_signal_sets_flag_and_loop_saves_at_its_safe_point_then_exits_75(
    tmp_path: Path,
    signum: int,
    start_child: Callable[..., subprocess.Popen[str]],
    child_env: Callable[..., dict[str, str]],
    wait_for_line: Callable[..., str],
) -> None:
    progress_file = tmp_path / "progress.jsonl"
    proc = start_child(
        LOOP, str(tmp_path / "ck"), env=child_env(OUTLIVE_PROGRESS_FILE=str(progress_file))
    )
    wait_for_line(progress_file, lambda line: json.loads(line)["step"] >= 5)
    assert os.listdir(tmp_path / "ck") == []  # nothing saved before the signal

    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=DEADLINE_S)

    assert proc.returncode == 75, stderr
    report = json.loads(stdout)
    assert report["steps_on_disk"] == [report["step"]]
    restored = Checkpointer(tmp_path / "ck", handle_signals=False).load_latest()
    assert restored is not None
    assert restored.state == {"step": report["step"], "saves": 1, "signal": signum}


def test_with_block_installs_handlers_and_restores_the_previous_ones(tmp_path: Path) -> None:
    signums = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    before = {s: signal.getsignal(s) for s in signums}
    with Checkpointer(tmp_path):
        assert all(signal.getsignal(s) != before[s] for s in signums)
    assert {s: signal.getsignal(s) for s in signums} == before


def test_a_real_signal_to_this_process_only_sets_the_flag(tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)}
    ckpt = Checkpointer(tmp_path)
    other = Checkpointer(tmp_path, handle_signals=False)
    try:
        assert not ckpt.preempted
        os.kill(os.getpid(), signal.SIGUSR1)
        assert ckpt.preempted and ckpt.preempt_signal == signal.SIGUSR1
        assert not other.preempted  # state lives on instances, not on the class
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal keeps the first one's number
        assert ckpt.preempt_signal == signal.SIGUSR1
        assert os.listdir(tmp_path) == []  # flag only: the handler saved nothing
    finally:
        ckpt.close()
    after = {s: signal.getsignal(s) for s in before}
    assert after == before


def test_handle_signals_false_leaves_handlers_alone(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with Checkpointer(tmp_path, handle_signals=False):
        assert signal.getsignal(signal.SIGTERM) == before


def test_close_keeps_a_handler_installed_after_ours(tmp_path: Path) -> None:
    original = signal.getsignal(signal.SIGUSR2)

    def later_handler(signum: int, frame: object) -> None:
        pass

    ckpt = Checkpointer(tmp_path)
    signal.signal(signal.SIGUSR2, later_handler)
    try:
        ckpt.close()
        assert signal.getsignal(signal.SIGUSR2) is later_handler
    finally:
        signal.signal(signal.SIGUSR2, original)


def test_built_outside_the_main_thread_it_installs_nothing(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def build() -> None:
        with Checkpointer(tmp_path) as ckpt:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(ckpt.preempted)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert seen == [before, False]
