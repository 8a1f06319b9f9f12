"""Goodput under preemption on a real Slurm cluster: outlive vs submitit's Checkpointable vs the
Young/Daly bound, on the same cluster with the same preemption schedule.

The work is the toy numpy training (``outlive/examples/train_numpy.py``): STEPS steps of
STEP_SLEEP_S each, so the useful work is STEPS x STEP_SLEEP_S seconds. Every attempt of either job
gets a preemption notice PERIOD_S seconds after it starts running, NOTICES times in all, each as
that system expects it:

- outlive: TERM to the batch shell (what ``--signal=B:TERM@LEAD`` delivers); the shell passes it
  to the job, which saves at its next safe point (SLURM1) and the shell requeues the job.
- submitit (from PyPI): USR2 to the job's step (what its ``--signal=USR2@90`` delivers); its
  handler pickles the Checkpointable, state and all, inside the handler, and requeues. It is
  submitted as its users do, by a Python script (SUBMIT_SCRIPT) timed from its start, as
  outlive's side is timed from its CLI's start: each side's interpreter and imports count.

Slurm's ~2 min 45 s requeue delay is cut for both alike: a requeued attempt is released
(``StartTime=now``) RESTART_AFTER_S after its notice. Goodput = useful work / wall time from
submission to the final result. The Young/Daly bound is the best periodic checkpointing without
a notice can do with the measured checkpoint cost delta and restart cost R when preemptions come
every M seconds: 1 - sqrt(2 delta / M) - R / M (first order). Each final result is also compared
bit for bit with an uninterrupted run.

Fairness: a warm-up job runs first (a fresh slurmctld's first scheduling pass comes seconds after
it starts), and each side starts its clock SETTLE_S after the cluster's last job ended (Slurm
schedules a batch job no sooner than batch_sched_delay, 3 s, after its previous pass). Each run
also prints where an attempt's seconds go, phase by phase (PHASES), from slurmctld's and slurmd's
millisecond log stamps, the run's own records (outlive) or submitit's log, and the driver.

    uv run --with submitit python bench/slurm_goodput.py [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, result_line

from outlive.examples import train_numpy
from outlive.testing.slurm import SlurmCluster

EXAMPLE = Path(train_numpy.__file__)
DEADLINE_S = 600.0
# A requeued job is released this long after its notice: past the ~1 s a requeue takes and the
# one-second credential revocation (outlive.testing.slurm.REVOKE_GAP_S), the same for both.
RESTART_AFTER_S = 2.5
# Slurm starts a batch job at a scheduling pass no sooner than batch_sched_delay (3 s) after its
# previous pass, and a job's end triggers one: a side submitting right after the other side's job
# ended would wait up to 3 s more than one submitting later (whole seconds, checked on a 1 s
# tick, and the end's pass may come a tick late: up to ~5 s). Each side starts its clock this long
# after the cluster's last job ended, so neither inherits the other's (nor the warm-up's) pass.
SETTLE_S = 5.0


# Submitit's side as its user runs it: a Python script that imports submitit, builds the
# executor and submits a Checkpointable, the training imported inside the job only (the lightest
# such script). Timed from the script's start, as outlive's side is timed from its CLI's start:
# each side's interpreter and imports count once. SubmititTraining is defined in the script
# (__main__), so cloudpickle sends it by value; its state lives on the object, which submitit
# pickles inside its USR2 handler (wherever the step happens to be).
SUBMIT_SCRIPT = """\
import sys
import submitit


class SubmititTraining:
    def __init__(self, steps, step_sleep_s, out):
        self.steps, self.step_sleep_s, self.out = steps, step_sleep_s, out
        self.state = None

    def __call__(self):
        import os, time
        from pathlib import Path
        from outlive.examples import train_numpy

        x, y = train_numpy.make_data()
        if self.state is None:
            self.state = train_numpy.initial_state()
        first = True
        while self.state["step"] < self.steps:
            train_numpy.train_step(self.state, x, y)
            if first:  # for the breakdown only: when this attempt's first step was done
                with open(os.path.join(self.out, "first-steps.log"), "a") as marks:
                    marks.write(f"{time.time()}\\n")
                first = False
            time.sleep(self.step_sleep_s)
        train_numpy.write_final(Path(self.out), self.state)
        return int(self.state["step"])

    def checkpoint(self):
        return submitit.helpers.DelayedSubmission(self)


folder, notices, steps, step_sleep_s, out = sys.argv[1:6]
executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=int(notices) + 2)
executor.update_parameters(partition="debug", time=60, signal_delay_s=90)
job = executor.submit(SubmititTraining(int(steps), float(step_sleep_s), out))
print(job.job_id)
"""


def warm_up(cluster: SlurmCluster, timeout_s: float = 60.0) -> float:
    """Run one trivial job to its end before anything is measured; the seconds it took.

    A freshly started slurmctld makes its first scheduling pass seconds after it starts (2.5 s
    here), so whichever side went first would pay that once and the other not. Warming up first
    keeps the schedule equal."""
    t0 = time.monotonic()
    job = (
        cluster.command("sbatch", "--parsable", "--output=/dev/null", "--wrap=true")
        .stdout.strip()
        .split(";")[0]
    )
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        state, _ = squeue_row(cluster, job)
        if state in ("", "COMPLETED", "FAILED", "CANCELLED"):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError(f"the warm-up job {job} did not end within {timeout_s:.0f} s")


def squeue_row(cluster: SlurmCluster, job: str) -> tuple[str, int]:
    out = cluster.command(
        "squeue", "-h", "-t", "all", "-j", job, "-O", "State:|,RestartCnt:|", check=False
    ).stdout.strip()
    if not out:
        return "", 0
    state, restarts = out.splitlines()[0].split("|")[:2]
    return state, int(restarts or 0)


def drive(
    cluster: SlurmCluster, job: str, notice: Callable[[], None], period_s: float, notices: int
) -> dict[str, Any]:
    """Deliver ``notices`` preemption notices, each ``period_s`` after an attempt is seen
    running, and release each requeued attempt ``RESTART_AFTER_S`` after its notice (instead of
    Slurm's ~2 min 45 s); return when the job ended, with the notice-to-running gaps."""
    sent, running_since, noticed_at, released = 0, None, 0.0, True
    gaps: list[float] = []
    notices_at: list[float] = []  # wall clock, to line up with the run's own records
    seen: dict[str, list[float]] = {"running": [], "pending": [], "release": [], "end": []}
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        state, restarts = squeue_row(cluster, job)
        now = time.monotonic()
        if state == "RUNNING" and restarts == sent:
            if running_since is None:
                running_since = now
                seen["running"].append(time.time())
                if sent:
                    gaps.append(now - noticed_at)
            if sent < notices and now - running_since >= period_s:
                notices_at.append(time.time())
                notice()
                sent, noticed_at, running_since, released = sent + 1, now, None, False
        elif state == "PENDING" and not released and now - noticed_at >= RESTART_AFTER_S:
            seen["release"].append(time.time())
            cluster.command("scontrol", "update", f"jobid={job}", "StartTime=now", check=False)
            released = True
        elif state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"):
            seen["end"].append(time.time())
            return {
                "seen": seen,
                "state": state,
                "notices": sent,
                "restarts": restarts,
                "gaps_s": gaps,
                "notices_at": notices_at,
            }
        if state == "PENDING" and len(seen["pending"]) < sent:
            seen["pending"].append(time.time())
        time.sleep(0.02)
    raise TimeoutError(f"job {job} did not end within {DEADLINE_S:.0f} s")


_SLURM_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\] (.*)$")
_SUBMITIT_STAMP = re.compile(r"^submitit \w+ \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\) - (.*)$")


def _log_events(
    path: Path, stamp: re.Pattern[str], fmt: str, patterns: dict[str, str]
) -> dict[str, list[float]]:
    """Timestamps (local time, as the daemons write them) of the lines matching each pattern."""
    out: dict[str, list[float]] = {k: [] for k in patterns}
    compiled = {k: re.compile(v) for k, v in patterns.items()}
    text = path.read_text(errors="replace") if path.is_file() else ""
    for line in text.splitlines():
        m = stamp.match(line)
        if not m:
            continue
        for key, pattern in compiled.items():
            if pattern.search(m.group(2)):
                out[key].append(datetime.strptime(m.group(1), fmt).timestamp())
    return out


def slurm_events(cluster: SlurmCluster, job: str) -> dict[str, list[float]]:
    """What slurmctld and slurmd logged of job ``job``, with their millisecond stamps."""
    log = cluster.dir / "log"
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    ctld = {
        "submitted": rf"_slurm_rpc_submit_batch_job: JobId={job} ",
        # the main scheduler's pass, or the backfill scheduler's
        "allocated": rf"(sched: Allocate JobId={job} |_start_job: Started JobId={job} )",
        "requeued": rf"^Requeuing JobId={job}$",
        "done": rf"_job_complete: JobId={job} done",
    }
    slurmd = {"batch_start": rf"Launching batch job {job} ", "step_start": rf"StepId={job}\.0 "}
    return {
        **_log_events(log / "slurmctld.log", _SLURM_STAMP, fmt, ctld),
        **_log_events(log / "slurmd.log", _SLURM_STAMP, fmt, slurmd),
    }


# One attempt's wall time, phase by phase: (label, from event, to event). Events of the bench's
# driver (call, running, notice, pending, release, end), of slurmctld/slurmd (submitted,
# allocated, batch_start, step_start, requeued, done) and of the job (wrapper, first_step,
# signal, exited, last_step). Submitit's "last step" is its "Job completed" line, after the
# result was written; outlive's the last progress record, before it.
PHASES = (
    ("submit call -> sbatch accepted", "call", "submitted"),
    ("sbatch accepted -> allocated (1st)", "submitted", "allocated"),
    ("release -> allocated (requeued)", "release", "allocated"),
    ("allocated -> batch script starts", "allocated", "batch_start"),
    ("batch script -> step (srun) starts", "batch_start", "step_start"),
    ("step -> wrapper runs (interp.)", "step_start", "wrapper"),
    # outlive on one node has no srun step: its supervisor starts from the batch script itself
    ("batch script -> wrapper runs", "batch_start", "wrapper"),
    ("wrapper -> first step done", "wrapper", "first_step"),
    ("allocated -> bench sees RUNNING", "allocated", "running"),
    ("notice -> signal in the process", "notice", "signal"),
    ("signal -> process exited (the save)", "signal", "exited"),
    ("process exited -> requeue done", "exited", "requeued"),
    ("requeue -> bench sees PENDING", "requeued", "pending"),
    ("notice -> release (fixed)", "notice", "release"),
    ("last step -> process exited", "last_step", "exited"),
    ("process exited -> job done", "exited", "done"),
    ("job done -> bench sees the end", "done", "end"),
)


def attempt_events(
    bench: dict[str, Any], slurm: dict[str, list[float]], job: list[dict[str, float]]
) -> list[dict[str, float]]:
    """Per attempt, every event's wall-clock time (missing ones left out)."""
    seen = bench["seen"]
    out = []
    for k, own in enumerate(job):
        ev: dict[str, float] = dict(own)
        for key, values in (
            ("allocated", slurm["allocated"]),
            ("batch_start", slurm["batch_start"]),
            ("step_start", slurm["step_start"]),
            ("running", seen["running"]),
            ("notice", bench["notices_at"]),
            ("pending", seen["pending"]),
            ("requeued", slurm["requeued"]),
        ):
            if k < len(values):
                ev[key] = values[k]
        if k > 0 and k - 1 < len(seen["release"]):
            ev["release"] = seen["release"][k - 1]
        if k == 0:
            ev["call"] = bench["called_at"]
            ev.update({k2: slurm[k2][0] for k2 in ("submitted",) if slurm[k2]})
        if k == len(job) - 1:
            ev.update({k2: slurm[k2][-1] for k2 in ("done",) if slurm[k2]})
            ev.update({k2: seen[k2][-1] for k2 in ("end",) if seen[k2]})
            ev.pop("requeued", None)
        else:
            ev.pop("last_step", None)
        out.append(ev)
    # The release belongs to the attempt it starts; notice -> release is read on the one before.
    for k in range(len(out) - 1):
        if "release" in out[k + 1]:
            out[k]["release_next"] = out[k + 1]["release"]
    return out


def phase_table(events: list[dict[str, float]]) -> dict[str, list[float]]:
    """Seconds of each phase, one value per attempt where it applies."""
    table: dict[str, list[float]] = {}
    for label, a, b in PHASES:
        values = []
        for ev in events:
            b_key = "release_next" if (a, b) == ("notice", "release") else b
            if a in ev and b_key in ev:
                values.append(round(ev[b_key] - ev[a], 3))
        table[label] = values
    return table


def outlive_job_events(run_dir: Path) -> list[dict[str, float]]:
    """Per attempt from the run's records: the supervisor's start, the first and last step
    (progress.jsonl), the signal and the exit (attempts/K.json)."""
    rows = []
    progress = run_dir / "progress.jsonl"
    if progress.is_file():
        rows = [json.loads(x) for x in progress.read_text().splitlines() if x.strip()]
    out = []
    k = 0
    while (run_dir / "attempts" / f"{k}.json").is_file():
        rec = json.loads((run_dir / "attempts" / f"{k}.json").read_text())
        start, end = rec.get("started_at"), rec.get("ended_at")
        ev: dict[str, float] = {}
        if start is not None and end is not None:
            ev.update(wrapper=start, exited=end)
            ts = [r["ts"] for r in rows if start <= r["ts"] <= end]
            if ts:
                ev.update(first_step=ts[0], last_step=ts[-1])
            if rec.get("term_to_exit_s") is not None:
                ev["signal"] = end - rec["term_to_exit_s"]
        out.append(ev)
        k += 1
    return out


def submitit_job_events(folder: Path, out_dir: Path, job: str) -> list[dict[str, float]]:
    """Per attempt from submitit's own log (millisecond stamps) and the first-step marks."""
    fmt = "%Y-%m-%d %H:%M:%S,%f"
    log = _log_events(
        folder / f"{job}_0_log.out",
        _SUBMITIT_STAMP,
        fmt,
        {
            "wrapper": r"^Starting with JobEnvironment",
            "signal": r"^Caught signal",
            "exited": r"^Exiting (gracefully|after successful)",
            "last_step": r"^Job completed successfully",
        },
    )
    marks = out_dir / "first-steps.log"
    firsts = [float(x) for x in marks.read_text().split()] if marks.is_file() else []
    out = []
    for k, start in enumerate(log["wrapper"]):
        ev = {"wrapper": start}
        for key in ("signal", "exited"):
            if k < len(log[key]):
                ev[key] = log[key][k]
        if k < len(firsts):
            ev["first_step"] = firsts[k]
        if k == len(log["wrapper"]) - 1 and log["last_step"]:
            ev["last_step"] = log["last_step"][-1]
        out.append(ev)
    return out


def print_phases(tables: dict[str, dict[str, list[float]]]) -> None:
    """One line per phase: each side's median over attempts (and runs), with the values."""
    names = list(tables)
    print(f"  {'where an attempt' + chr(39) + 's seconds go (median s)':<40}" + "".join(
        f"{n:>10}" for n in names))  # fmt: skip
    for label, _, _ in PHASES:
        cells = []
        for n in names:
            values = tables[n].get(label) or []
            cells.append(f"{statistics.median(values):10.3f}" if values else f"{'-':>10}")
        print(f"  {label:<40}" + "".join(cells))


def weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


def reference(tmp: Path, steps: int) -> dict[str, np.ndarray]:
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(tmp / "ref"))
    env.pop("OUTLIVE_PROGRESS_FILE", None)
    cmd = [sys.executable, str(EXAMPLE), "--steps", str(steps), "--step-sleep-s", "0"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return weights(tmp / "ref" / "final.npz")


def run_outlive(
    cluster: SlurmCluster, root: Path, steps: int, sleep_s: float, period_s: float, notices: int
) -> dict[str, Any]:
    proj = root / "proj"
    proj.mkdir()
    shutil.copyfile(EXAMPLE, proj / "train_numpy.py")
    target = dict(cluster.target, workdir=str(root / "work"), durable=str(root / "durable"))
    lines = ["[targets.hpc]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, **cluster.env)

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [OUTLIVE, *args], cwd=proj, env=env, capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)

    cmd = [sys.executable, "train_numpy.py", "--steps", str(steps), "--save-every", "20"]
    time.sleep(SETTLE_S)
    called_at = time.time()
    t0 = time.monotonic()
    run_id = cli("run", "-t", "hpc", "--json", "--name", "goodput", "--", *cmd,
                 "--step-sleep-s", str(sleep_s))["run_id"]  # fmt: skip
    # The job id from the run's own record, as submitit's side has it from its object: an
    # `outlive status` here (a CLI, an agent, an squeue) would be the bench's overhead, run
    # while the job is being scheduled and started, and counted in outlive's wall.
    record = root / "work" / ".outlive" / "runs" / run_id / "slurm.json"
    job = str(json.loads(record.read_text())["job_id"])
    drove = drive(
        cluster,
        job,
        lambda: cluster.command("scancel", "--batch", "--signal=TERM", job, check=False),
        period_s,
        notices,
    )
    wall = time.monotonic() - t0
    st = cli("status", "--json", run_id)["runs"][0]
    final = Path(st["ckpt_dir"]) / "final.npz"
    drove["called_at"] = called_at
    events = attempt_events(
        drove,
        slurm_events(cluster, job),
        outlive_job_events(Path(st["run_dir"])),
    )
    return {
        **drove,
        "wall_s": wall,
        "phases": phase_table(events),
        "breakdown": breakdown(Path(st["run_dir"]), drove["notices_at"]),
        "outlive_state": st["state"],
        "save_s": st["slurm"].get("save_s"),
        "weights": weights(final) if final.exists() else None,
    }


def breakdown(run_dir: Path, notices_at: list[float]) -> list[dict[str, float]]:
    """Where each preemption's seconds went, from the run's per-attempt records: notice -> the
    job's supervisor has the signal (the batch shell's forward), signal -> the job exited (the
    save), exit -> the next attempt's job started (requeue, release, scheduling, start-up)."""
    attempts = []
    for k in range(len(notices_at) + 1):
        path = run_dir / "attempts" / f"{k}.json"
        attempts.append(json.loads(path.read_text()) if path.is_file() else {})
    out = []
    for k, notice_at in enumerate(notices_at):
        this, after = attempts[k], attempts[k + 1]
        ended, save = this.get("ended_at"), this.get("term_to_exit_s")
        if ended is None or save is None or after.get("started_at") is None:
            continue
        out.append(
            {
                "forward_s": round(ended - save - notice_at, 3),
                "save_s": round(save, 3),
                "restart_s": round(after["started_at"] - ended, 3),
            }
        )
    return out


def run_submitit(
    cluster: SlurmCluster, root: Path, steps: int, sleep_s: float, period_s: float, notices: int
) -> dict[str, Any] | None:
    try:
        import submitit  # noqa: F401  (here only to tell whether it is installed)
    except ImportError:
        return None
    os.environ.update(cluster.env)
    out = root / "submitit-out"
    out.mkdir()
    argv = [sys.executable, "-c", SUBMIT_SCRIPT, str(root / "submitit"), str(notices)]
    argv += [str(steps), str(sleep_s), str(out)]
    time.sleep(SETTLE_S)
    called_at = time.time()
    t0 = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    job_id = done.stdout.split()[-1]
    drove = drive(
        cluster,
        job_id,
        lambda: cluster.command("scancel", "--signal=USR2", job_id, check=False),
        period_s,
        notices,
    )
    wall = time.monotonic() - t0
    final = out / "final.npz"
    drove["called_at"] = called_at
    events = attempt_events(
        drove, slurm_events(cluster, job_id), submitit_job_events(root / "submitit", out, job_id)
    )
    return {
        **drove,
        "wall_s": wall,
        "phases": phase_table(events),
        "weights": weights(final) if final.exists() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (< 1 min per system)")
    ap.add_argument("--keep", action="store_true", help="leave the testbed cluster up")
    args = ap.parse_args()
    steps, sleep_s, period_s, notices = (300, 0.05, 4.0, 3) if args.quick else (900, 0.05, 10.0, 4)
    work_s = steps * sleep_s

    cluster = SlurmCluster.up("goodput")
    root = Path(tempfile.mkdtemp(prefix="goodput-", dir=cluster.shared))
    try:
        print(f"warm-up job (the scheduler's first pass): {warm_up(cluster):.2f} s")
        ref = reference(root, steps)
        ours = run_outlive(cluster, root, steps, sleep_s, period_s, notices)
        theirs = run_submitit(cluster, root, steps, sleep_s, period_s, notices)
    finally:
        if not args.keep:
            cluster.down()

    gaps = ours["gaps_s"] + (theirs["gaps_s"] if theirs else [])
    restart_s = sum(gaps) / len(gaps) if gaps else 0.0
    delta_s = float(ours["save_s"] or 0.0)
    mtbf_s = period_s + restart_s
    bound = 1.0 - math.sqrt(2.0 * delta_s / mtbf_s) - restart_s / mtbf_s
    g_ours = work_s / ours["wall_s"]
    g_theirs = work_s / theirs["wall_s"] if theirs else None
    ok_ours = ours["weights"] is not None and same(ours["weights"], ref)
    ok_theirs = (
        theirs is not None and theirs["weights"] is not None and same(theirs["weights"], ref)
    )

    print(
        f"goodput under preemption: {steps} steps x {sleep_s} s = {work_s:.0f} s of work, "
        f"a notice {period_s:.0f} s into each attempt, {notices} notices"
    )
    print(f"{'system':<34} {'wall s':>7} {'goodput':>8} {'restarts':>8}  result")
    print(
        f"{'outlive (save at safe point)':<34} {ours['wall_s']:7.1f} {g_ours:8.3f} "
        f"{ours['restarts']:8d}  {'bit-identical' if ok_ours else 'DIFFERS'}"
    )
    if theirs is not None and g_theirs is not None:
        print(
            f"{'submitit Checkpointable (handler)':<34} {theirs['wall_s']:7.1f} {g_theirs:8.3f} "
            f"{theirs['restarts']:8d}  {'bit-identical' if ok_theirs else 'DIFFERS'}"
        )
    else:
        print("submitit: not installed; run with `uv run --with submitit python bench/...`")
    print(
        f"{'Young/Daly bound (no notice)':<34} {'':>7} {bound:8.3f}           "
        f"delta {delta_s:.3f} s, R {restart_s:.2f} s, M {mtbf_s:.1f} s"
    )
    tables = {"outlive": ours["phases"]}
    if theirs is not None:
        tables["submitit"] = theirs["phases"]
    print_phases(tables)
    figures = {
        "work_s": work_s,
        "outlive_wall_s": round(ours["wall_s"], 2),
        "outlive_goodput": round(g_ours, 4),
        "submitit_wall_s": round(theirs["wall_s"], 2) if theirs else None,
        "submitit_goodput": round(g_theirs, 4) if g_theirs else None,
        "young_daly_bound": round(bound, 4),
        "restart_s": round(restart_s, 3),
        "save_s": delta_s,
        "outlive_restarts": ours["restarts"],
        "submitit_restarts": theirs["restarts"] if theirs else None,
    }
    ratios = {
        "outlive_vs_submitit": round(g_ours / g_theirs, 3) if g_theirs else None,
        "outlive_vs_young_daly": round(g_ours / bound, 3) if bound > 0 else None,
    }
    goals = {
        "outlive_bit_identical": ok_ours,
        "outlive_restarted_every_notice": ours["restarts"] == notices,
        "outlive_goodput_at_least_submitit": g_theirs is None or g_ours >= 0.95 * g_theirs,
        "submitit_measured": theirs is not None,
    }
    print(result_line("slurm_goodput", figures, ratios, goals))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
