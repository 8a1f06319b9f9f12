"""The batch shell's forward of a warning on one node, run for real minus Slurm: the rendered
script under bash with stand-ins for ``srun``/``squeue``/``scancel``/``scontrol``, the agent's real
supervisor and a job that saves on TERM. The shell signals this attempt's supervisor itself (its
pid file), with no squeue/scancel round trip; a pid file that is not a plain pid is never used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outlive.agent import box
from outlive.backends.slurm_script import render, spec_for
from outlive.config import SlurmOptions

SHIMS = {
    # srun: drop its options and run the step (the supervisor) as a child, as slurmstepd would.
    "srun": ('while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done\n"$@"\n'),
    "squeue": (
        'echo "$*" >> "$T/squeue.calls"\n'
        'if [ -n "${SHIM_SQUEUE_STATE:-}" ]; then cat "$SHIM_SQUEUE_STATE"; echo; exit 0; fi\n'
        'case "$*" in *State*) echo "RUNNING|0|" ;; *) echo RUNNING ;; esac\n'
    ),
    "scancel": 'echo "$*" >> "$T/scancel.calls"\n',
    "scontrol": 'echo "$*" >> "$T/scontrol.calls"\n',
}

# Saves (here: notes the signal) on TERM and exits 75, the Checkpointer's "run me again".
JOB = (
    "import os, pathlib, signal, sys, time\n"
    "got = []\n"
    "signal.signal(signal.SIGTERM, lambda s, f: got.append(s))\n"
    "pathlib.Path(os.environ['T'], 'ready').write_text('1')\n"
    "while not got:\n"
    "    time.sleep(0.01)\n"
    "print('saved on TERM', flush=True)\n"
    "sys.exit(75)\n"
)


def wait_for(path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


def start(tmp_path: Path, squeue_state: Path | None = None) -> tuple[subprocess.Popen[str], Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in SHIMS.items():
        (bindir / name).write_text("#!/bin/sh\n" + body)
        (bindir / name).chmod(0o755)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    spec = {
        "run_id": "r1",
        "name": "one",
        "command": [sys.executable, "-c", JOB],
        "workdir": str(tmp_path),
        "ckpt_dir": str(tmp_path / "durable" / "one"),
        "backend": "slurm",
        "env": {},
    }
    (run_dir / "run.json").write_text(json.dumps(spec))
    script = run_dir / "job.sbatch"
    script.write_text(render(spec_for(SlurmOptions(), "r1", "one")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        PATH=f"{bindir}:{os.environ['PATH']}",
        T=str(tmp_path),
        SLURM_JOB_ID="4711",
        SLURM_JOB_NUM_NODES="1",
        SLURM_CPUS_PER_TASK="1",
    )
    if squeue_state is not None:  # what squeue says of the job's state (else RUNNING|0|)
        env["SHIM_SQUEUE_STATE"] = str(squeue_state)
    agent = str(Path(box.__file__).resolve().parent)
    proc = subprocess.Popen(
        ["bash", str(script), sys.executable, agent, str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=run_dir,
    )
    wait_for(tmp_path / "ready")
    wait_for(run_dir / "attempts" / "0.pid")
    return proc, run_dir


def test_a_warning_goes_straight_to_the_supervisor_which_saves_and_requeues_from_the_step(
    tmp_path: Path,
) -> None:
    """The supervisor requeues the job from its step as soon as the attempt's record is
    written (squeue says this attempt is RUNNING); the shell then only ends, 0."""
    proc, run_dir = start(tmp_path)
    supervisor = json.loads((run_dir / "launch.json").read_text())["supervisor_pid"]
    assert (run_dir / "attempts" / "0.pid").read_text() == f"{supervisor}\n"
    proc.send_signal(signal.SIGTERM)  # what --signal=B:TERM@LEAD delivers: the batch shell only
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"passing it to the job's supervisor ({supervisor})" in out
    assert "requeued job 4711" in out and "requeueing job" not in out  # the step's, once
    assert not (tmp_path / "scancel.calls").exists()  # no scheduler round trip to forward it
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4711\n"
    assert (run_dir / "attempts" / "0.requeued").read_text() == "4711\n"
    attempt = json.loads((run_dir / "attempts" / "0.json").read_text())
    assert attempt["exit_code"] == 75 and attempt["requeue"] is True
    assert attempt["forwarded_signals"] == ["SIGTERM"]
    assert "saved on TERM" in (run_dir / "stdout.log").read_text()
    assert not (run_dir / "attempts" / "0.pid").exists()  # removed once the job ended
    assert not (run_dir / "exit.json").exists()  # requeued: the run is not over


@pytest.mark.parametrize("state", ["COMPLETING|0|", "RUNNING|1|", ""])
def test_a_job_slurm_is_ending_is_left_to_the_shell_which_checks_again(
    tmp_path: Path, state: str
) -> None:
    """Where squeue does not say this attempt is RUNNING (scancel or Slurm's own requeue is
    ending it: `scontrol requeue` would bring a cancelled job back; or squeue said nothing),
    the step requeues nothing and the shell decides as before."""
    shim = tmp_path / "state"
    shim.write_text(state)
    proc, run_dir = start(tmp_path, squeue_state=shim)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert not (run_dir / "attempts" / "0.requeued").exists()
    if state:  # Slurm is ending it: nobody requeues it
        assert proc.returncode == 75, out
        assert not (tmp_path / "scontrol.calls").exists()
        assert "Slurm is ending job 4711" in out
    else:  # squeue said nothing: the shell requeues, as it always did
        assert proc.returncode == 0, out
        assert (tmp_path / "scontrol.calls").read_text() == "requeue 4711\n"
        assert "requeueing job 4711" in out


@pytest.mark.parametrize("content", ["-{group}\n", "{group} 1\n", "\n", "$(touch x)\n"])
def test_a_pid_file_that_is_not_a_plain_pid_is_never_signalled(
    tmp_path: Path, content: str
) -> None:
    # A bystander in a process group of its own: "-PGID" would signal the whole group (and
    # "-1" every process of the user), so a broken check would end it.
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    proc, run_dir = start(tmp_path)
    supervisor = json.loads((run_dir / "launch.json").read_text())["supervisor_pid"]
    (run_dir / "attempts" / "0.pid").write_text(content.format(group=bystander.pid))
    proc.send_signal(signal.SIGTERM)
    wait_for(tmp_path / "scancel.calls")  # the shell fell back to scancel
    assert (tmp_path / "scancel.calls").read_text() == "--signal=TERM 4711\n"
    os.kill(supervisor, signal.SIGTERM)  # what scancel would have done
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "passing it to the job's steps" in out and "job's supervisor" not in out
    assert not (run_dir / "x").exists()
    assert bystander.poll() is None  # never signalled
    bystander.kill()
    bystander.wait()
