"""Real cgroups (as root): a job the kernel OOM-kills in a small memory cgroup is diagnosed ``oom``
from the cgroup's own counter, and thread pools follow a CPU quota (U40, U41)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from local_helpers import OUTLIVE, read_json_file

pytestmark = pytest.mark.root

MEMORY_LIMIT_BYTES = 128 << 20  # room for the CLI, agent and supervisor; far less than the hog

# Waits for "go" (so the launching CLI has left the cgroup), then touches ~1 GiB page by page.
HOG_JOB = """\
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
chunks = []
for _ in range(128):
    chunks.append(bytearray(b"x" * (8 << 20)))
print("allocated 1 GiB without being killed", flush=True)
"""

THREADS_JOB = """\
import json, os
keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
with open(os.path.join(os.environ["OUTLIVE_CKPT_DIR"], "threads.json"), "w") as f:
    json.dump({k: os.environ.get(k) for k in keys}, f)
"""


def _launch_in(cgroup, project, name: str, *command: str) -> str:
    """`outlive run` from a wrapper that first joins ``cgroup``: supervisor and job inherit it."""
    argv = cgroup.wrap([OUTLIVE, "run", "--json", "--name", name, "--", *command])
    done = subprocess.run(
        argv, cwd=project.dir, env=project.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["run_id"])


def test_status_reports_oom_when_the_cgroup_counter_grew(project, memory_cgroup):
    memory_cgroup.limit_memory(MEMORY_LIMIT_BYTES)
    before = memory_cgroup.oom_kills()
    project.write("hog.py", HOG_JOB)
    go = project.dir / "go"
    run_id = _launch_in(memory_cgroup, project, "hog", sys.executable, "hog.py", str(go))
    launch = read_json_file(project.dir / ".outlive" / "runs" / run_id / "launch.json")
    assert launch["memory_cgroup"] is not None
    assert launch["oom_kill_baseline"] == before

    go.touch()
    st = project.wait_ended(run_id)
    assert memory_cgroup.oom_kills() > before, "the kernel did not OOM-kill anything"
    assert (st["state"], st["signal"], st["exit_code"]) == ("failed", 9, None), st
    diag = st["diagnosis"]
    assert diag["cause"] == "oom", diag
    assert any("oom_kill" in e and "grew" in e for e in diag["evidence"]), diag
    assert "U41" in diag["gotchas"]
    log = (project.dir / ".outlive" / "runs" / run_id / "stdout.log").read_text()
    assert "without being killed" not in log
    # The CLI reports the same diagnosis.
    assert project.status_cli(run_id)["diagnosis"]["cause"] == "oom"


def test_job_threads_follow_the_cgroup_cpu_quota(project, cpu_cgroup):
    cpu_cgroup.limit_cpu(50_000, 100_000)  # half a core
    project.write("threads.py", THREADS_JOB)
    run_id = _launch_in(cpu_cgroup, project, "threads", sys.executable, "threads.py")
    assert project.wait_ended(run_id)["state"] == "succeeded"
    seen = read_json_file(project.dir / ".outlive" / "durable" / "threads" / "threads.json")
    assert seen == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    launch = read_json_file(project.dir / ".outlive" / "runs" / run_id / "launch.json")
    assert launch["threads"] == 1


def test_users_thread_setting_wins_over_the_cgroup_quota(make_project, cpu_cgroup):
    project = make_project(toml='[targets.local]\nenv = { OMP_NUM_THREADS = "3" }\n')
    cpu_cgroup.limit_cpu(50_000, 100_000)
    project.write("threads.py", THREADS_JOB)
    run_id = _launch_in(cpu_cgroup, project, "threads", sys.executable, "threads.py")
    assert project.wait_ended(run_id)["state"] == "succeeded"
    seen = read_json_file(project.dir / ".outlive" / "durable" / "threads" / "threads.json")
    assert seen == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "1"}
