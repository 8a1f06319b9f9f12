"""The Slurm backend (issue 7): sbatch is the detach primitive.

The client renders the batch script (outlive.backends.slurm); here, on the login host, the run
dir is written as for any run, the script saved as job.sbatch and submitted with sbatch. The
script's step is this package's ``supervise`` (the SlurmSupervisor below) on the compute node, in
the same run dir on the shared filesystem for every attempt (SLURM5). The records it keeps and
how the probe judges them: ``slurm_state.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from typing import Dict, List

from outlive import wire
from outlive._shapes import replace

from .commands import run_cmd
from .common import AgentError, Rec, check_name, check_run_id
from .records import request_cancel, write_json_atomic
from .rundir import agent_dir, prepare_run
from .slurm_state import (
    ATTEMPTS_DIRNAME,
    SLURM_CMD_TIMEOUT_S,
    SLURM_END_JSON,
    SLURM_TERMINAL,
    int_or_zero,
    slurm_job_id,
    slurm_probe,
    squeue_jobs,
)
from .supervisor import Ending, Supervisor

SBATCH_SCRIPT_MAX_BYTES = 256 * 1024
SLURM_RUN_FIELDS = {"backend": wire.BACKEND_SLURM, "detach": "sbatch"}  # run.json additions


def check_request(request: wire.LaunchRequest) -> None:
    """Check a Slurm launch request before anything is created."""
    script = request.sbatch_script
    if not isinstance(script, str) or not script.startswith("#!/bin/bash\n"):
        raise AgentError("a Slurm launch needs the rendered batch script; this is a client bug")
    if "\x00" in script or len(script.encode("utf-8")) > SBATCH_SCRIPT_MAX_BYTES:
        raise AgentError("the batch script holds a NUL byte or is too large; this is a client bug")
    if shutil.which("sbatch") is None:
        raise AgentError(
            "sbatch is not on PATH on this host; set `host` to the cluster's login node, or "
            "load Slurm's module in the login shell's startup files",
            kind="no_sbatch",
        )


def launch(request: wire.LaunchRequest) -> Rec:
    """One job, or with ``cells`` one job array (a run dir per cell)."""
    check_request(request)
    if request.cells is not None:
        return _launch_array(request)
    run_dir, spec = prepare_run(request, SLURM_RUN_FIELDS)
    return _submit(run_dir, spec, request)


def _sbatch_argv(chdir: str, script: str, run_dir_arg: str) -> List[str]:
    """``sbatch`` of the script; its $1 python, $2 this agent (a directory python runs), $3 the
    run dir (an array's: the cells' run dir prefix)."""
    return [
        "sbatch",
        "--parsable",
        "--chdir=" + chdir,
        script,
        sys.executable,
        agent_dir(),
        run_dir_arg,
    ]


def _under_tmpdir(path: str) -> str | None:
    """This host's node-local $TMPDIR when ``path`` lies under it (SLURM5)."""
    tmp = os.environ.get("TMPDIR")
    if not tmp:
        return None
    root = os.path.realpath(tmp)
    real = os.path.realpath(path)
    if root != "/" and (real == root or real.startswith(root.rstrip("/") + "/")):
        return root
    return None


def _submit(run_dir: str, spec: Rec, request: wire.LaunchRequest) -> Rec:
    """Save the batch script as job.sbatch and submit it; the run dir goes if sbatch refuses.
    A cell of an array is only prepared here: _launch_array submits all cells at once."""
    for what, path in (("run directory", run_dir), ("checkpoint directory", spec["ckpt_dir"])):
        tmp = _under_tmpdir(path)
        if tmp:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise AgentError(
                f"the {what} {path} is under $TMPDIR ({tmp}), node-local storage that is wiped "
                "when the job ends (SLURM5); put workdir and durable on the shared filesystem"
            )
    script_path = os.path.join(run_dir, wire.SBATCH_SCRIPT)
    with open(script_path, "w", encoding="utf-8") as f:
        f.write(str(request.sbatch_script))
    os.chmod(script_path, 0o555)
    if request.array_cell is not None:
        return {"run_dir": run_dir, "ckpt_dir": spec["ckpt_dir"], "pid": None}
    argv = _sbatch_argv(run_dir, script_path, run_dir)
    try:
        job_id = _sbatch(argv, "job")
    except AgentError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    record = {"job_id": job_id, "argv": argv, "submitted_at": time.time()}
    write_json_atomic(os.path.join(run_dir, wire.SLURM_JSON), record)
    return {"run_dir": run_dir, "ckpt_dir": spec["ckpt_dir"], "pid": None, "job_id": job_id}


def _sbatch(argv: List[str], what: str) -> str:
    """Run ``sbatch --parsable ...``; the job id, or AgentError with sbatch's own words."""
    done = run_cmd(argv, SLURM_CMD_TIMEOUT_S, keep_bytes=64 * 1024)
    job_id = done["stdout"].strip().split(";")[0] if done["rc"] == 0 else ""
    if not job_id.isdigit() or not job_id.isascii():
        why = (done["stderr"] or done["stdout"] or done["error"] or "no output").strip()
        raise AgentError(
            f"sbatch refused the {what}: {why.splitlines()[-1] if why else 'no output'}",
            kind="sbatch_refused",
        )
    return job_id


def _launch_array(request: wire.LaunchRequest) -> Rec:
    """Prepare a run dir per cell (``<base>-<i>``) and submit them as one job array; cell i is
    array task i, whose log, records and checkpoints stay in its own run dir and durable path."""
    base = check_run_id(request.run_id)
    cells = request.cells
    if not isinstance(cells, list) or not cells or not all(isinstance(c, dict) for c in cells):
        raise AgentError("an array launch needs a non-empty list of cells; this is a client bug")
    names = [check_name(c.get("name")) for c in cells]
    if len(set(names)) != len(names):
        raise AgentError("two cells of the array share a name, so they would share checkpoints")
    prepared: List[Rec] = []
    try:
        for i, cell in enumerate(cells):
            sub = replace(
                request,
                run_id=f"{base}-{i}",
                name=cell["name"],
                command=cell.get("command"),  # checked in prepare_run
                cells=None,
                array_cell=i,
                # checked once, for the first cell
                deploy_manifest=request.deploy_manifest if i == 0 else None,
            )
            run_dir, spec = prepare_run(sub, SLURM_RUN_FIELDS)
            prepared.append(_submit(run_dir, spec, sub))
        runs_dir = os.path.dirname(prepared[0]["run_dir"])
        script = os.path.join(prepared[0]["run_dir"], wire.SBATCH_SCRIPT)
        argv = _sbatch_argv(runs_dir, script, os.path.join(runs_dir, base))
        job_id = _sbatch(argv, "array")
    except BaseException:
        for cell in prepared:
            shutil.rmtree(cell["run_dir"], ignore_errors=True)
        raise
    now = time.time()
    for i, cell in enumerate(prepared):
        cell["job_id"] = f"{job_id}_{i}"
        record = {"job_id": cell["job_id"], "array_job_id": job_id, "array_index": i}
        record.update(argv=argv, submitted_at=now)
        write_json_atomic(os.path.join(cell["run_dir"], wire.SLURM_JSON), record)
    return {"array_job_id": job_id, "cells": prepared}


class SlurmSupervisor(Supervisor):
    """One attempt of a Slurm run, as the job step on the compute node. Besides what every
    supervisor does it keeps per-attempt records, writes exit.json only when the run is over,
    and exits with the job's status, or wire.REQUEUE_EXIT (75) when the attempt was interrupted
    and the batch shell should requeue the job."""

    def __init__(self, run_dir: str, launcher: List[str]) -> None:
        super().__init__(run_dir)
        self.attempt = int_or_zero(os.environ.get("SLURM_RESTART_COUNT"))
        self.first_signal_at: float | None = None
        self.status: int | None = None
        self.main_dir = run_dir
        # One supervisor per node on a multi-node run: node 0 keeps the run's own records (its
        # state); node k keeps its records and its ranks' output under nodes/<k>/.
        self.node_rank = int_or_zero(os.environ.get("SLURM_NODEID"))
        if self.node_rank:
            self.run_dir = os.path.join(run_dir, "nodes", str(self.node_rank))
            os.makedirs(self.run_dir, exist_ok=True)
        if launcher and isinstance(self.spec, dict) and "command" in self.spec:
            self.spec["command"] = [*launcher, *self.spec["command"]]

    def on_signal(self, signum: int, frame: object) -> None:
        if self.first_signal_at is None:
            self.first_signal_at = time.time()
        super().on_signal(signum, frame)

    def run(self) -> int:
        attempts = os.path.join(self.run_dir, ATTEMPTS_DIRNAME)
        os.makedirs(attempts, exist_ok=True)
        stale = os.path.join(self.run_dir, wire.EXIT_JSON)
        if os.path.exists(stale):  # a finished run requeued by hand: it is not over any more
            os.replace(stale, os.path.join(attempts, f"exit-before-{self.attempt}.json"))
        try:
            code = super().run()
        finally:
            self._remove_pid_file()
        return self.status if self.status is not None else code

    def _report_ready(self, launch: Rec) -> None:
        launch.update(self._where())
        write_json_atomic(os.path.join(self.run_dir, wire.LAUNCH_JSON), launch)
        if self.node_rank == 0:
            self._write_pid_file()
        super()._report_ready(launch)

    def _pid_file(self) -> str:
        return os.path.join(self.run_dir, ATTEMPTS_DIRNAME, f"{self.attempt}.pid")

    def _write_pid_file(self) -> None:
        """This supervisor's pid for the batch shell on this node, which signals it directly
        (job.sbatch's to_supervisor); written once the signal handlers are in place, whole
        (tmp + rename), not synced: only this attempt's live batch shell reads it."""
        path = self._pid_file()
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()}\n")
            os.replace(tmp, path)
        except OSError:
            pass  # the shell falls back to scancel

    def _remove_pid_file(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._pid_file())

    def _where(self) -> Rec:
        return {
            "attempt": self.attempt,
            "job_id": os.environ.get("SLURM_JOB_ID"),
            "node": os.environ.get("SLURMD_NODENAME") or os.uname().nodename,
            "node_rank": self.node_rank,
        }

    def _write_exit(self, end: Ending, launch: Rec) -> None:
        self._remove_pid_file()  # the job has ended: nothing is left to signal directly
        code, sig, error = end.code, end.sig, end.error
        cancelled = os.path.exists(os.path.join(self.main_dir, wire.CANCEL_JSON))
        signalled = self.first_signal_at is not None
        interrupted = not cancelled and (code == wire.REQUEUE_EXIT or (signalled and code != 0))
        ended_at = time.time()
        if interrupted:
            self.status = wire.REQUEUE_EXIT
        else:
            self.status = code if code is not None else 128 + (sig or 0)
        record = dict(self._where())
        record.update(
            {
                "exit_code": code,
                "signal": sig,
                "max_rss_bytes": end.max_rss_bytes,
                "started_at": launch.get("started_at"),
                "ended_at": ended_at,
                "forwarded_signals": self.forwarded,
                "requeue": interrupted,
                # TERM -> exit: the save on a warning, measured; the next submission of this
                # run name sizes its --signal lead from it (SLURM2).
                "term_to_exit_s": (
                    round(ended_at - self.first_signal_at, 3) if self.first_signal_at else None
                ),
            }
        )
        if error:
            record["error"] = error
        path = os.path.join(self.run_dir, ATTEMPTS_DIRNAME, f"{self.attempt}.json")
        write_json_atomic(path, record)
        if interrupted:
            self._requeue_from_step()
        else:
            super()._write_exit(end, launch)

    def requeued_marker(self) -> str:
        """``attempts/N.requeued``: this attempt's supervisor requeued the job itself (job.sbatch
        reads it: the TERM Slurm's requeue then sends is not passed on, and no second requeue
        follows)."""
        return os.path.join(self.main_dir, ATTEMPTS_DIRNAME, f"{self.attempt}.requeued")

    def _requeue_from_step(self) -> None:
        """Requeue the job from inside its step, as soon as the interrupted attempt's record is
        written: the batch shell would do it only after this process, the step and srun have
        ended (~40 ms later per notice on the testbed, every one of them a later restart, since
        Slurm schedules the next attempt from the requeue on). One node only (on more, node 0
        must not cut short the others' saves: the shell waits for every node), and only while
        squeue says this very attempt is RUNNING: a job that scancel or Slurm is ending shows
        COMPLETING, and `scontrol requeue` would bring it back (checked on Slurm 22.05). Any
        doubt leaves the requeue to the shell, which checks again."""
        single = os.environ.get("SLURM_JOB_NUM_NODES", "1") == "1"
        job = own_job_id()
        if self.node_rank or not single or not job:
            return
        state = run_cmd(["squeue", "-h", "-t", "all", "-j", job, "-O", "State:|,RestartCnt:|"], 10)
        if state["rc"] != 0 or str(state["stdout"]).strip() != f"RUNNING|{self.attempt}|":
            return
        if os.path.exists(os.path.join(self.main_dir, wire.CANCEL_JSON)):
            return  # `outlive cancel` came meanwhile: the shell leaves it cancelled
        marker = self.requeued_marker()
        try:
            with open(marker, "w", encoding="ascii") as f:
                f.write(f"{job}\n")
        except OSError:
            return
        done = run_cmd(["scontrol", "requeue", job], 10)
        if done["rc"] != 0:
            with contextlib.suppress(OSError):
                os.unlink(marker)  # the shell tries, and says why it could not
            return
        sys.stderr.write(
            f"outlive: the job saved its state and asked to run again; requeued job {job}\n"
        )
        sys.stderr.flush()


def own_job_id() -> str:
    """This job's id as squeue and scontrol take it: ``ARRAY_TASK`` in an array (a task's raw
    id can name the whole array), else ``SLURM_JOB_ID``; empty outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID", "")


def supervisor(run_dir: str, launcher: List[str]) -> Supervisor:
    return SlurmSupervisor(run_dir, launcher)


def probe(runs: Dict[str, Rec], boot_now: str | None, now: float) -> Dict[str, Rec]:
    """All the Slurm runs of one probe: one squeue call (and sacct) for all their jobs."""
    judged = slurm_probe(list(runs), now, runs)
    return {run_dir: wire.RunProbe(**st).to_json() for run_dir, st in judged.items()}


def cancel(run_dir: str, spec: Rec, grace_s: float) -> Rec:
    """``scancel`` the run's job: Slurm sends TERM to the job's steps and the batch shell and
    KILL after its KillWait; cancel.json keeps the batch shell from requeueing it."""
    if os.path.exists(os.path.join(run_dir, wire.EXIT_JSON)):
        return {"signalled": None, "note": "the run is not running"}
    job_id = slurm_job_id(run_dir)
    if not job_id:
        return {"signalled": None, "note": "the run has no Slurm job id (it was never submitted)"}
    request_cancel(run_dir, grace_s)
    done = run_cmd(["scancel", job_id], SLURM_CMD_TIMEOUT_S)
    if done["rc"] != 0:
        raise AgentError(f"scancel {job_id} failed: {done['error']}")
    return {"signalled": "slurm job", "job_id": job_id, "grace_s": grace_s}


def ended(run_dir: str, spec: Rec) -> bool:
    """For ``logs -f``: a Slurm run with no exit record has ended once the scheduler says so."""
    if os.path.exists(os.path.join(run_dir, SLURM_END_JSON)):
        return True
    job_id = slurm_job_id(run_dir)
    if not job_id:
        return True
    sched, error = squeue_jobs([job_id])
    if error is not None:
        return False
    row = sched.get(job_id)
    return row is None or row.get("State") in SLURM_TERMINAL
