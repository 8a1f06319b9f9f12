"""Signals on the local target: the supervisor forwards TERM/INT/USR1/USR2 to the job's whole
process group and records the exit; `cancel` preempts a Checkpointer job that then resumes bit for
bit; a job that ignores TERM is KILLed after the target's grace."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import sys
from pathlib import Path

from local_helpers import Project, read_json_file, wait_for

import outlive.examples

# Parent and child both record every forwarded signal; they leave when the "stop" file appears.
SIGNAL_JOB = """\
import os, signal, subprocess, sys, time
out, role = sys.argv[1], sys.argv[2]

def record(signum, frame):
    with open(os.path.join(out, role + ".signals"), "a") as f:
        f.write(signal.Signals(signum).name + "\\n")

for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, record)
child = None
if role == "parent":
    child = subprocess.Popen([sys.executable, sys.argv[0], out, "child"])
    while not os.path.exists(os.path.join(out, "child.ready")):
        time.sleep(0.01)
open(os.path.join(out, role + ".ready"), "w").close()
while not os.path.exists(os.path.join(out, "stop")):
    time.sleep(0.01)
if child is not None:
    sys.exit(child.wait())
"""

IGNORES_TERM_JOB = """\
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(os.environ["OUTLIVE_CKPT_DIR"], "ready"), "w").close()
while True:
    time.sleep(1)
"""

TRAIN = Path(outlive.examples.__file__).with_name("train_numpy.py")
TRAIN_ARGS = ("train_numpy.py", "--steps", "100", "--save-every", "40", "--step-sleep-s", "0.02")


def _signals(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_signals_to_the_supervisor_reach_the_jobs_whole_process_group(project):
    project.write("signal_job.py", SIGNAL_JOB)
    out = project.dir / "sig"
    out.mkdir()
    run_id = project.python("signal_job.py", str(out), "parent", name="signals")
    wait_for(lambda: (out / "parent.ready").exists(), "the job and its child to be ready")
    st = project.wait_running(run_id)
    supervisor = st["supervisor_pid"]

    sent = ["SIGUSR1", "SIGUSR2", "SIGINT", "SIGTERM"]
    for i, name in enumerate(sent):
        os.kill(supervisor, getattr(signal, name))
        for role in ("parent", "child"):
            wait_for(
                lambda role=role, i=i: len(_signals(out / f"{role}.signals")) > i,
                f"the {role} to record {name}",
            )
    assert _signals(out / "parent.signals") == sent
    assert _signals(out / "child.signals") == sent
    # The supervisor stays until the job itself exits, whatever it was sent.
    assert project.status(run_id)["state"] == "running"

    (out / "stop").touch()
    st = project.wait_ended(run_id)
    assert st["state"] == "succeeded" and st["exit_code"] == 0

    run_dir = project.dir / ".outlive" / "runs" / run_id
    exit_rec = read_json_file(run_dir / "exit.json")
    assert exit_rec["exit_code"] == 0 and exit_rec["signal"] is None
    assert isinstance(exit_rec["max_rss_bytes"], int) and exit_rec["max_rss_bytes"] > 0
    assert exit_rec["ended_at"] >= st["started_at"]
    assert exit_rec["forwarded_signals"] == sent
    spec_path = run_dir / "run.json"
    assert stat.S_IMODE(spec_path.stat().st_mode) == 0o444
    spec = read_json_file(spec_path)
    assert spec["command"] == [sys.executable, "signal_job.py", str(out), "parent"]
    assert spec["run_id"] == run_id and spec["name"] == "signals"


def test_cancel_preempts_the_checkpointer_and_the_relaunch_resumes_bit_for_bit(project):
    shutil.copyfile(TRAIN, project.dir / "train_numpy.py")
    command = (sys.executable, *TRAIN_ARGS)
    reference = project.run(*command, name="reference")
    run_id = project.run(*command, name="interrupted")

    # Watch the job's own progress file (a cheap read, not a look), and freeze the job the moment
    # it passes step 10 so it cannot finish while the CLI starts; TERM stays pending until CONT.
    run_dir = project.dir / ".outlive" / "runs" / run_id
    progress = run_dir / "progress.jsonl"
    wait_for(lambda: progress.is_file() and progress.read_text().count("\n") >= 10, "step 10")
    pgid = int(read_json_file(run_dir / "launch.json")["pgid"])
    os.killpg(pgid, signal.SIGSTOP)
    assert project.status(run_id)["state"] == "running"
    try:
        reply = json.loads(project.cli("cancel", "--json", run_id).stdout)
    finally:
        os.killpg(pgid, signal.SIGCONT)
    assert reply["signalled"] == "supervisor" and reply["run_id"] == run_id

    st = project.wait_ended(run_id)
    assert st["state"] == "cancelled", st
    assert st["exit_code"] == 75  # the Checkpointer's requeue code: saved, run me again
    log = (project.dir / ".outlive" / "runs" / run_id / "stdout.log").read_text()
    preempted = re.search(r"^preempted at step (\d+): saved", log, re.M)
    assert preempted, log
    saved_step = int(preempted.group(1))
    assert 10 <= saved_step < 100

    again = project.run(*command, name="interrupted")
    st = project.wait_ended(again)
    assert st["state"] == "succeeded", st
    log = (project.dir / ".outlive" / "runs" / again / "stdout.log").read_text()
    assert f"resumed from step {saved_step} " in log, log

    assert project.wait_ended(reference)["state"] == "succeeded"
    durable = project.dir / ".outlive" / "durable"
    final = (durable / "interrupted" / "final.npz").read_bytes()
    assert final == (durable / "reference" / "final.npz").read_bytes()


def test_cancel_kills_a_job_that_ignores_term_after_the_targets_grace(make_project):
    project = make_project(toml="[targets.local]\nkill_grace_s = 1\n")
    project.write("stubborn.py", IGNORES_TERM_JOB)
    run_id = project.python("stubborn.py", name="stubborn")
    ready = project.dir / ".outlive" / "durable" / "stubborn" / "ready"
    wait_for(ready.exists, "the job to ignore TERM")

    reply = json.loads(project.cli("cancel", "--json", run_id).stdout)
    assert reply["signalled"] == "supervisor" and reply["grace_s"] == 1

    st = project.wait_ended(run_id)
    assert (st["state"], st["signal"]) == ("cancelled", 9), st
    exit_rec = read_json_file(project.dir / ".outlive" / "runs" / run_id / "exit.json")
    assert exit_rec["forwarded_signals"] == ["SIGTERM", "SIGKILL"]
    # A second cancel of an ended run signals nothing.
    again = json.loads(project.cli("cancel", "--json", run_id).stdout)
    assert again["signalled"] is None


def test_cancel_from_a_copy_of_the_project_is_refused_and_the_originals_job_runs_on(
    make_project, tmp_path
):
    """``cp -a`` of a project copies its registry, whose local runs name the original's run
    dirs: a cancel from the copy signalled the original's job."""
    project = make_project(dirname="orig")
    run_id, go = project.start_waiting("busy")
    project.wait_running(run_id)
    copy = Project(tmp_path / "copy")
    shutil.copytree(project.dir, copy.dir, symlinks=True)
    done = copy.cli("cancel", run_id, rc=2)
    said = done.stderr.strip()
    assert len(said.splitlines()) == 1 and "Traceback" not in said
    assert f"launched from the project in {project.dir}" in said and "cancel it from there" in said
    assert project.status(run_id)["state"] == "running"
    go.touch()
    assert project.wait_ended(run_id)["state"] == "succeeded"
