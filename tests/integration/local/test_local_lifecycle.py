"""A run's life on the local target with real processes and real signals: states, exit codes,
kills, the vanished diagnosis, progress/heartbeat, and the environment every job is given."""

from __future__ import annotations

import json
import os
import signal
import sys

from local_helpers import wait_for

from outlive.agent.box import procfs as box_procfs

ENV_JOB = """\
import json, os
stat = open("/proc/self/stat").read()
fields = stat[stat.rfind(")") + 2 :].split()
keys = [k for k in os.environ if k.startswith("OUTLIVE_")]
keys += ["PYTHONUNBUFFERED", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
record = {
    "pid": os.getpid(),
    "pgrp": int(fields[2]),
    "session": int(fields[3]),
    "stdin": os.readlink("/proc/self/fd/0"),
    "cwd": os.getcwd(),
    "env": {k: os.environ.get(k) for k in keys},
}
with open(os.path.join(os.environ["OUTLIVE_CKPT_DIR"], "env.json"), "w") as f:
    json.dump(record, f)
"""


def test_successful_command_goes_running_then_succeeded_with_exit_code_0(project):
    run_id, go = project.start_waiting("ok")
    st = project.status_cli(run_id)
    assert st["state"] == "running"
    assert st["pid"] and st["supervisor_pid"] and st["pid"] != st["supervisor_pid"]
    assert st["exit_code"] is None and st["ended_at"] is None

    go.touch()
    st = project.wait_ended(run_id)
    assert st["state"] == "succeeded"
    assert st["exit_code"] == 0 and st["signal"] is None and st["diagnosis"] is None
    assert st["ended_at"] >= st["started_at"]


def test_failing_command_ends_failed_with_its_exit_code(project):
    run_id = project.run(sys.executable, "-c", "import sys; sys.exit(3)", name="fails")
    st = project.wait_ended(run_id)
    assert (st["state"], st["exit_code"], st["signal"]) == ("failed", 3, None)
    assert st["diagnosis"] is None  # an exit code is its own explanation


def test_sigkill_of_the_job_is_failed_with_signal_9(project):
    run_id, _ = project.start_waiting("killed-job")
    st = project.wait_running(run_id)
    os.kill(st["pid"], signal.SIGKILL)
    st = project.wait_ended(run_id)
    assert (st["state"], st["signal"], st["exit_code"]) == ("failed", 9, None)
    diag = st["diagnosis"]
    assert diag["cause"] == "killed"
    assert any("SIGKILL" in e for e in diag["evidence"])


def test_sigkill_of_supervisor_and_job_together_is_vanished_killed(project):
    run_id, _ = project.start_waiting("both-killed")
    st = project.wait_running(run_id)
    # Supervisor first, so it cannot write an exit record for the job.
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)

    st = project.wait(run_id, lambda s: s["state"] != "running", "the run to stop running")
    assert st["state"] == "vanished"
    diag = st["diagnosis"]
    assert diag["cause"] == "killed"
    assert diag["evidence"] and all(isinstance(e, str) and e for e in diag["evidence"])
    assert "U3" in diag["gotchas"]
    run_dir = project.dir / ".outlive" / "runs" / run_id
    assert not (run_dir / "exit.json").exists()

    # The CLI says the same, and a vanished run asked about by id is a failed check (exit 1).
    cli = project.status_cli(run_id)
    assert cli["state"] == "vanished" and cli["diagnosis"]["cause"] == "killed"
    assert project.cli("status", run_id, rc=None).returncode == 1


def test_progress_and_heartbeat_come_from_the_progress_file(project):
    run_id, go = project.start_waiting("progress", progress_step=7)
    st = project.wait(run_id, lambda s: s["progress"] is not None, "the first progress record")
    assert st["state"] == "running"
    assert st["progress"]["step"] == 7 and st["progress"]["loss"] == 0.25
    assert isinstance(st["heartbeat_age_s"], float) and st["heartbeat_age_s"] >= 0
    progress_file = project.dir / ".outlive" / "runs" / run_id / "progress.jsonl"
    assert json.loads(progress_file.read_text().splitlines()[-1])["step"] == 7
    go.touch()
    assert project.wait_ended(run_id)["state"] == "succeeded"


def test_job_gets_the_outlive_env_devnull_stdin_its_own_group_and_a_new_session(project):
    project.write("env_job.py", ENV_JOB)
    run_id = project.python("env_job.py", name="env")
    st = project.wait_ended(run_id)
    assert st["state"] == "succeeded", st
    rec = json.loads((project.dir / ".outlive" / "durable" / "env" / "env.json").read_text())
    env = rec["env"]
    run_dir = project.dir / ".outlive" / "runs" / run_id

    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["OUTLIVE_RUN_ID"] == run_id
    assert env["OUTLIVE_RUN_NAME"] == "env"
    assert env["OUTLIVE_CKPT_DIR"] == st["ckpt_dir"] == str(project.dir / ".outlive/durable/env")
    assert env["OUTLIVE_PROGRESS_FILE"] == str(run_dir / "progress.jsonl")
    assert env["OUTLIVE_TARGET"] == "local"
    assert env["OUTLIVE_PROFILE"] == "local"
    threads = box_procfs.thread_count()  # this session's own cgroup CPU quota, if it has one
    if threads is None:
        assert env["OMP_NUM_THREADS"] is None and env["MKL_NUM_THREADS"] is None
    else:
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(threads)

    assert rec["stdin"] == "/dev/null"
    assert rec["cwd"] == str(project.dir)
    assert rec["pid"] == st["pid"]
    assert rec["pgrp"] == rec["pid"], "the job must lead its own process group"
    assert rec["session"] != os.getsid(0), "the job must not share the caller's session"
    assert rec["session"] == st["supervisor_pid"], "the supervisor's setsid made the session"


def test_a_run_dir_deleted_under_a_live_job_is_running_not_vanished_and_cancel_stops_it(
    project,
):
    """`rm -rf` of a run's directory (its records) while its job runs: the job is found by the
    run id the supervisor put in its environment, so status says running with a warning (never
    an ended run a gate could act on), and cancel stops those processes."""
    import shutil

    run_id, _ = project.start_waiting("records-deleted")
    st = project.wait_running(run_id)
    job_pid = st["pid"]
    shutil.rmtree(project.dir / ".outlive" / "runs" / run_id)

    cli = project.status_cli(run_id)
    assert cli["state"] == "running", cli
    assert cli["pid"] == job_pid
    assert "still runs on this box" in cli["warning"] and str(job_pid) in cli["warning"]
    assert box_procfs.is_alive(job_pid, None)

    done = project.cli("cancel", run_id)
    assert f"pid {job_pid}" in done.stdout and "stopped" in done.stdout
    project.wait(run_id, lambda s: s["state"] != "running", "the job to be stopped")
    assert not box_procfs.is_alive(job_pid, None)
    sup = st["supervisor_pid"]  # its job gone, it ends too (its exit record has nowhere to go)
    wait_for(lambda: not box_procfs.is_alive(sup, None), "the supervisor to end")
    after = project.status_cli(run_id)
    assert after["state"] == "vanished" and after["diagnosis"]["cause"] == "unknown"
