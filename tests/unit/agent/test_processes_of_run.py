"""``procfs.processes_of_run``: a run's processes found by the run id in their environment,
for a run whose records are gone; only a run id's shape is ever looked for."""

from __future__ import annotations

import os
import subprocess
import sys

from outlive import wire
from outlive.agent.box.procfs import processes_of_run

RUN_ID = "20261204-164000-abc123"


def test_the_processes_carrying_the_run_id_are_found_and_no_others() -> None:
    env = dict(os.environ, **{wire.ENV_RUN_ID: RUN_ID})
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = subprocess.Popen(sleeper, env=env)
    other = subprocess.Popen(sleeper, env=dict(env, **{wire.ENV_RUN_ID: RUN_ID[:-1] + "4"}))
    try:
        found = processes_of_run(RUN_ID)
        assert [pid for pid, _ in found] == [ours.pid]
        assert all(ticks is not None for _, ticks in found)
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()
    assert processes_of_run(RUN_ID) == []


def test_what_is_not_a_run_id_is_never_looked_for() -> None:
    env = dict(os.environ, **{wire.ENV_RUN_ID: ""})
    blank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        for name in ("", "x", "..", "20261204-164000-ABC123", "20261204-164000-abc123/.."):
            assert processes_of_run(name) == []
    finally:
        blank.kill()
        blank.wait()
