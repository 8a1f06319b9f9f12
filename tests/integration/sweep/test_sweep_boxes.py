"""The issue's sweep on the testbed: 12 items over the local target and two real sshd boxes; one
box reboots and the other's link is cut mid-sweep, the client is SIGKILLed and a second `sweep`
call finishes the job. Every item succeeds exactly once, no item ever has two live runs, and each
result is bit-identical to its uninterrupted run."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from local_helpers import wait_for
from sweep_helpers import (
    assert_result,
    box_project,
    runs_of,
    start_sweep,
    sweep_status,
    train_sweep,
)

from outlive.store import Store
from outlive.sweep import registry
from outlive.testing import Box


def _items_on(doc: dict[str, Any], target: str, min_step: int) -> list[dict[str, Any]]:
    return [
        i
        for i in doc["items"]
        if i["target"] == target and i["state"] == "running" and (i["step"] or 0) >= min_step
    ]


def test_twelve_items_over_three_targets_survive_a_reboot_a_cut_and_a_killed_client(
    tmp_path: Path, two_boxes: tuple[Box, Box]
) -> None:
    box_a, box_b = two_boxes
    project = box_project(tmp_path, two_boxes, "twelve")
    steps = list(range(40, 64, 2))  # 12 items, ~4-6 s each
    sweep = train_sweep(project.dir, "twelve", steps, sleep_s=0.1)
    argv = [str(sweep), "-t", "local", "-t", "a", "-t", "b", "--per-target", "2", "--poll-s", "0.3"]

    def start() -> subprocess.Popen[bytes]:
        return start_sweep(project.dir, project.env, *argv)

    def look() -> dict[str, Any]:
        return sweep_status(project.dir, "twelve", env=project.env)

    client = start()
    try:
        store = Store(project.dir / ".outlive")
        wait_for(lambda: [r for r in registry.sweeps(store) if r.name == "twelve"], "the sweep")
        wait_for(lambda: _items_on(look(), "a", 10), "an item on box a past a checkpoint", 120)
        rebooted_at = time.time()
        box_a.reboot()
        on_b = wait_for(lambda: _items_on(look(), "b", 3), "an item running on box b", 120)
        box_b.cut()
        cut_keys = {i["key"] for i in on_b}
        wait_for(
            lambda: [i for i in look()["items"] if i["unreachable"]], "box b seen unreachable", 120
        )
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
    assert look()["summary"]["done"] < len(steps)  # the client died mid-sweep

    client = start()
    try:
        done_before = look()["summary"]["done"]
        wait_for(lambda: look()["summary"]["done"] > done_before, "progress while b is cut", 180)
        mid = look()
        # what ran on b while it was cut stays there: running (unreachable) or seen done before
        assert all(
            i["target"] == "b" and i["state"] in ("running", "done")
            for i in mid["items"]
            if i["key"] in cut_keys
        )
        box_b.restore()
        assert client.wait(timeout=240) == 0
    finally:
        if client.poll() is None:
            client.send_signal(signal.SIGKILL)
            client.wait(timeout=30)
        project.kill_leftovers()

    runs = runs_of(project.dir, "twelve")
    assert len(runs) == len(steps)
    relaunched = 0
    for n in steps:
        item_runs = runs[f"twelve.steps={n}"]
        assert [r.state for r in item_runs].count("succeeded") == 1
        assert item_runs[-1].state == "succeeded"
        for old, new in itertools.pairwise(item_runs):
            # only the reboot ended a run early, and the next one started after it
            assert (old.target, old.state) == ("a", "vanished")
            assert new.created_at > rebooted_at
            relaunched += 1
        if f"steps={n}" in cut_keys:
            assert len(item_runs) == 1  # unreachable was never taken for dead
        assert_result(tmp_path, item_runs[-1].ckpt_dir, n)
    assert relaunched >= 1
    final = look()
    assert final["summary"]["done"] == len(steps)
    # the status says how each relaunch went: back on a from its checkpoint (a answered again)
    notes = [i["note"] for i in final["items"] if i["restarts"]]
    assert notes and all(n.startswith("relaunched on ") for n in notes)
    assert any("resuming from its checkpoint there" in n for n in notes)
    logs = [project.cli("logs", i["run_id"], "-n", "400").stdout for i in final["items"]]
    assert sum("resumed from step" in log for log in logs) >= relaunched
