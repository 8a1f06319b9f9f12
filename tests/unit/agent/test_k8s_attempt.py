"""A Kubernetes pod's entry point, run for real as the pod runs it (``python3 agent.pyz
k8s-attempt run.json`` with the ConfigMap's files next to the request): it unpacks the project,
runs the job under the supervisor, tees its output, writes the termination message and exits
0, 75 (interrupted: run another pod) or the job's code; a later attempt re-enters the run dir."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from outlive import wire
from outlive.agent.bundle import zipapp

RUN_ID = "20261203-120000-abcdef"


def pod_files(tmp_path: Path, command: list[str]) -> tuple[Path, Path]:
    """The ConfigMap's files (agent.pyz, project.zip, run.json) and the claim's workdir."""
    cm = tmp_path / "opt-outlive"
    cm.mkdir()
    (cm / "agent.pyz").write_bytes(zipapp())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("job.py", JOB)
        zf.writestr("pkg/data.txt", "tree\n")
    (cm / "project.zip").write_bytes(buf.getvalue())
    workdir = tmp_path / "claim" / "proj"
    req = wire.LaunchRequest(
        run_id=RUN_ID,
        name="the run",
        command=command,
        workdir=str(workdir),
        durable=str(workdir / ".outlive" / "durable"),
        backend=wire.BACKEND_KUBERNETES,
        kill_grace_s=2.0,
        pythonpath=str(cm / "agent.pyz"),
    )
    (cm / "run.json").write_text(json.dumps(req.to_json()))
    return cm, workdir


JOB = """
import os, sys, time
from outlive import wire  # the job library comes from the zipapp
print("attempt in", os.getcwd().rsplit("/", 1)[-1], open("pkg/data.txt").read().strip(), flush=True)
mode = sys.argv[1]
if mode == "sleep":
    open(os.path.join(os.environ["OUTLIVE_CKPT_DIR"], "started"), "w").close()
    time.sleep(60)
sys.exit(int(mode))
"""


def start(cm: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OUTLIVE_TERMINATION_LOG=str(tmp_path / "termination-log"))
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(
        ["python3", str(cm / "agent.pyz"), "k8s-attempt", str(cm / "run.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def attempt(cm: Path, tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    proc = start(cm, tmp_path)
    out, err = proc.communicate(timeout=60)
    message = json.loads((tmp_path / "termination-log").read_text())
    return proc.returncode, out.decode() + err.decode(), message


def test_an_attempt_runs_the_job_in_the_unpacked_tree_and_reports_through_the_message(
    tmp_path: Path,
) -> None:
    cm, workdir = pod_files(tmp_path, [sys.executable, "job.py", "0"])
    code, output, message = attempt(cm, tmp_path)
    assert code == 0, output
    assert "attempt in proj tree" in output  # the container's stdout (kubectl logs)
    run_dir = workdir / ".outlive" / "runs" / RUN_ID
    assert "attempt in proj tree" in (run_dir / "stdout.log").read_text()  # and the claim
    assert message["exit_code"] == 0 and message["attempt"] == 0
    assert message["container_exit"] == 0 and message["v"] == 1
    spec = json.loads((run_dir / "run.json").read_text())
    assert spec["backend"] == "kubernetes"


@pytest.mark.parametrize(("job_exit", "container_exit"), [(75, 75), (3, 3)])
def test_the_container_exits_75_for_a_requeue_and_the_jobs_code_for_a_crash(
    tmp_path: Path, job_exit: int, container_exit: int
) -> None:
    cm, _ = pod_files(tmp_path, [sys.executable, "job.py", str(job_exit)])
    code, output, message = attempt(cm, tmp_path)
    assert code == container_exit, output
    assert message["exit_code"] == job_exit


def test_a_later_attempt_re_enters_the_run_dir_and_keeps_the_earlier_records(
    tmp_path: Path,
) -> None:
    cm, workdir = pod_files(tmp_path, [sys.executable, "job.py", "75"])
    assert attempt(cm, tmp_path)[0] == 75
    code, _, message = attempt(cm, tmp_path)
    assert code == 75 and message["attempt"] == 1
    run_dir = workdir / ".outlive" / "runs" / RUN_ID
    old = json.loads((run_dir / "attempts" / "0" / "exit.json").read_text())
    assert old["exit_code"] == 75
    assert json.loads((run_dir / "launch.json").read_text())["attempt"] == 1


def test_term_is_forwarded_and_an_attempt_killed_by_it_exits_75_with_the_save_time(
    tmp_path: Path,
) -> None:
    cm, workdir = pod_files(tmp_path, [sys.executable, "job.py", "sleep"])
    proc = start(cm, tmp_path)
    started = workdir / ".outlive" / "durable" / "the run" / "started"
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert started.exists(), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGTERM)  # the kubelet's TERM on a preemption
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 75, out + err
    message = json.loads((tmp_path / "termination-log").read_text())
    assert message["signal_name"] == "SIGTERM" and message["term_to_exit_s"] is not None
