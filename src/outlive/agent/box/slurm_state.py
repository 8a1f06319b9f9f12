"""A Slurm run's state, judged on the box from its own records and the scheduler's view.

Records per run dir (the Slurm backend and its supervisor write them):
  slurm.json           job id, the sbatch argv, submitted_at                 (written once)
  launch.json          the current attempt (overwritten by each attempt)
  attempts/<n>.json    how attempt n ended; n = SLURM_RESTART_COUNT (0 for the first)
  exit.json            only once the run is over: never for an attempt that is requeued
  slurm_end.json       the scheduler's terminal view, kept once seen (squeue forgets jobs)
The probe reads these plus one squeue call (and sacct where accounting exists) for all job ids
of the call and judges the state here (slurm_judge), so every caller of the probe agrees.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from typing import Dict, List, Tuple

from outlive import wire

from .commands import run_cmd
from .common import Rec, count_of
from .records import (
    exit_record,
    read_json,
    read_progress,
    read_record,
    read_spec,
    write_json_atomic,
)

SLURM_CMD_TIMEOUT_S = 20.0
SLURM_END_JSON = "slurm_end.json"
ATTEMPTS_DIRNAME = "attempts"

SQUEUE_FIELDS = (
    "JobID",
    "ArrayJobID",
    "ArrayTaskID",
    "State",
    "Reason",
    "RestartCnt",
    "exit_code",
    "NodeList",
    "TimeLimit",
    "TimeUsed",
    "StartTime",
    "EndTime",
    "MinMemory",
)
SLURM_TERMINAL = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
)
SACCT_FIELDS = ("JobID", "State", "ExitCode", "MaxRSS", "ReqMem", "Elapsed", "NodeList")


def int_or_zero(text: object) -> int:
    try:
        return max(0, int(str(text)))
    except ValueError:
        return 0


def slurm_job_id(run_dir: str) -> str | None:
    rec = read_json(os.path.join(run_dir, wire.SLURM_JSON))
    job_id = rec.get("job_id") if isinstance(rec, dict) else None
    return str(job_id) if job_id else None


def squeue_jobs(job_ids: List[str]) -> Tuple[Dict[str, Rec], str | None]:
    """The scheduler's view of the given jobs in one call; (by job id, error)."""
    if not job_ids:
        return {}, None
    fmt = ",".join(f + ":|" for f in SQUEUE_FIELDS)
    argv = ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-O", fmt]
    done = run_cmd(argv, SLURM_CMD_TIMEOUT_S)
    if done["rc"] != 0:
        # Every id unknown makes squeue fail ("Invalid job id specified"): that is an answer.
        if "invalid job id" in (done["stderr"] + done["stdout"]).lower():
            return {}, None
        return {}, done["error"] or "squeue failed"
    out: Dict[str, Rec] = {}
    for line in done["stdout"].splitlines():
        values = line.split("|")
        if len(values) < len(SQUEUE_FIELDS):
            continue
        row = {f: values[i].strip() for i, f in enumerate(SQUEUE_FIELDS)}
        # An array task's JobID is its raw id; outlive names it ARRAY_TASK, as Slurm's -j does.
        task = row["ArrayTaskID"]
        out[f"{row['ArrayJobID']}_{task}" if task.isdigit() else row["JobID"]] = row
    return out, None


def sacct_jobs(job_ids: List[str]) -> Tuple[Dict[str, List[Rec]], str | None]:
    """Accounting rows (the job and its steps) where the cluster keeps accounting."""
    if not job_ids or shutil.which("sacct") is None:
        return {}, None
    argv = ["sacct", "-n", "-P", "-j", ",".join(job_ids), "-o", ",".join(SACCT_FIELDS)]
    done = run_cmd(argv, SLURM_CMD_TIMEOUT_S)
    if done["rc"] != 0:
        return {}, done["error"] or "sacct failed"
    out: Dict[str, List[Rec]] = {}
    for line in done["stdout"].splitlines():
        values = line.split("|")
        if len(values) < len(SACCT_FIELDS):
            continue
        row = {f: values[i] for i, f in enumerate(SACCT_FIELDS)}
        out.setdefault(row["JobID"].split(".")[0], []).append(row)
    return out, None


def _slurm_records(run_dir: str, spec: Rec, now: float) -> Rec:
    progress, heartbeat_age_s = read_progress(run_dir, now)
    attempts: List[Rec] = []
    try:
        names = os.listdir(os.path.join(run_dir, ATTEMPTS_DIRNAME))
    except OSError:
        names = []
    for n in sorted(names, key=lambda s: (len(s), s)):
        if re.match(r"^[0-9]+\.json$", n):
            rec = read_json(os.path.join(run_dir, ATTEMPTS_DIRNAME, n))
            if isinstance(rec, dict):
                attempts.append(rec)

    def record(name: str) -> Rec | None:
        return read_record(os.path.join(run_dir, name))

    return {
        "backend": wire.BACKEND_SLURM,
        "run_id": spec.get("run_id"),
        "name": spec.get("name"),
        "run_dir": run_dir,
        "ckpt_dir": spec.get("ckpt_dir"),
        "job_id": slurm_job_id(run_dir),
        "launch": record(wire.LAUNCH_JSON),
        "exit": exit_record(os.path.join(run_dir, wire.EXIT_JSON)),
        "end": record(SLURM_END_JSON),
        "attempts": attempts,
        "cancel_requested": os.path.exists(os.path.join(run_dir, wire.CANCEL_JSON)),
        "progress": progress,
        "heartbeat_age_s": heartbeat_age_s,
        "scheduler": None,
        "accounting": None,
        "scheduler_error": None,
    }


def slurm_spec(run_dir: str) -> Rec | None:
    """The run's run.json when it is a Slurm run."""
    spec = read_spec(run_dir)
    return spec if spec is not None and spec.get("backend") == wire.BACKEND_SLURM else None


def slurm_probe(
    run_dirs: List[str], now: float, specs: Dict[str, Rec] | None = None
) -> Dict[str, Rec]:
    """The state of the Slurm runs among ``run_dirs``, judged from their records and the
    scheduler: one squeue call for all their jobs, one sacct call for those squeue has dropped.
    ``specs`` (run dir to run.json) spares reading run.json again when the caller has it."""
    found: Dict[str, Rec] = {}
    for run_dir in run_dirs:
        spec = specs.get(run_dir) if specs is not None else slurm_spec(run_dir)
        if spec is not None:
            found[run_dir] = _slurm_records(run_dir, spec, now)
    ask = [r["job_id"] for r in found.values() if r["job_id"] and not r["exit"] and not r["end"]]
    sched, error = squeue_jobs(ask)
    gone = [j for j in ask if j not in sched or sched[j].get("State") in SLURM_TERMINAL]
    acct, acct_error = sacct_jobs(gone) if gone and error is None else ({}, None)
    for run_dir, rec in found.items():
        job_id = rec["job_id"]
        if job_id in ask:
            rec["scheduler"] = sched.get(job_id)
            rec["accounting"] = acct.get(job_id)
            rec["scheduler_error"] = error
            rec["accounting_error"] = acct_error
            state = (rec["scheduler"] or {}).get("State") or _acct_state(rec["accounting"])
            if state in SLURM_TERMINAL and not os.path.exists(
                os.path.join(run_dir, wire.EXIT_JSON)
            ):
                # squeue forgets a job MinJobAge after it ends: keep what it said.
                end = {
                    "scheduler": rec["scheduler"],
                    "accounting": rec["accounting"],
                    "seen_at": now,
                }
                with contextlib.suppress(OSError):
                    write_json_atomic(os.path.join(run_dir, SLURM_END_JSON), end)
                rec["end"] = end
        found[run_dir] = slurm_judge(rec)
    return found


def _acct_state(rows: List[Rec] | None) -> str | None:
    """The job's own row of sacct ("CANCELLED by 0" → "CANCELLED")."""
    for row in rows or []:
        if "." not in str(row.get("JobID", "")):
            return str(row.get("State", "")).split(" ")[0] or None
    return None


_SLURM_PENDING = ("PENDING", "CONFIGURING", "RESV_DEL_HOLD")
_SLURM_REQUEUED = ("REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT")


def _slurm_exit_code(text: object) -> Tuple[int | None, int | None]:
    """sacct's ``N:S`` or squeue's raw wait status (``256`` is exit 1) → (exit code, signal)."""
    parts = str(text or "").split(":")
    try:
        code = int(parts[0])
        sig = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None, None
    if len(parts) == 1:
        code, sig = code >> 8, code & 0x7F
    return (None, sig) if sig else (code, None)


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _slurm_bytes(text: object) -> int | None:
    """Slurm sizes (``1234K``, ``2000M``, ``4000Mn``, ``16G``) in bytes; bare numbers are MiB
    for memory requests, as Slurm reads them."""
    m = re.match(r"^([0-9.]+)([KMGT]?)", str(text or "").strip())
    if not m:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS.get(m.group(2) or "M", 1 << 20))


def _oom_advice(rec: Rec, job_id: str) -> List[str]:
    """SLURM4: the job passed its memory request; MaxRSS and ReqMem say by how much."""
    rows = rec.get("accounting") or []
    rss = [_slurm_bytes(r.get("MaxRSS")) for r in rows if r.get("MaxRSS")]
    rss_b = max([x for x in rss if x] or [0]) or max(
        [int(a.get("max_rss_bytes") or 0) for a in rec.get("attempts") or []] + [0]
    )
    req = next((r.get("ReqMem") for r in rows if r.get("ReqMem")), None) or (
        rec.get("scheduler") or {}
    ).get("MinMemory")
    req_b = _slurm_bytes(req)
    evidence = [
        f"Slurm ended job {job_id} as OUT_OF_MEMORY: it passed the memory it asked for and the "
        "job's cgroup killed it (host RAM, not GPU memory: do not shrink the batch for this)"
    ]
    if rss_b and req_b:
        want = math.ceil(rss_b * 1.2 / (1 << 20))
        evidence.append(
            f"MaxRSS {rss_b >> 20} MiB of ReqMem {req_b >> 20} MiB: raise --mem (mem = ...) to "
            f"about MaxRSS x 1.2 = {want}M"
        )
    else:
        evidence.append(
            f"read `sacct -j {job_id} -o MaxRSS,ReqMem` and raise --mem (mem = ...) to about "
            "MaxRSS x 1.2"
        )
    return evidence


def _slurm_ended(rec: Rec, state: str, job_id: str, restarts: int) -> Rec:
    """State and diagnosis of a job the scheduler reports ended, when no exit record exists."""
    row = rec.get("scheduler") or {}
    code, sig = _slurm_exit_code(row.get("exit_code"))
    for r in rec.get("accounting") or []:
        if "." not in str(r.get("JobID", "")):
            code, sig = _slurm_exit_code(r.get("ExitCode"))
    out: Rec = {"exit_code": code, "signal": sig}
    if state == "CANCELLED":
        out["state"] = "cancelled"
        return out
    out["state"] = "failed"
    last = (rec.get("attempts") or [{}])[-1]
    if state == "OUT_OF_MEMORY":
        diag = {"cause": "oom", "evidence": _oom_advice(rec, job_id), "gotchas": ["SLURM4", "U9"]}
    elif state == "TIMEOUT":
        limit = row.get("TimeLimit") or "its --time"
        diag = {
            "cause": "killed",
            "evidence": [
                f"Slurm ended job {job_id} at its time limit ({limit}) before the job saved "
                "and requeued: the --signal lead was too short for the save, or the job does "
                "not save on TERM"
            ],
            "gotchas": ["SLURM2", "SLURM1"],
        }
    elif state == "COMPLETED":
        diag = {
            "cause": "unknown",
            "evidence": [f"Slurm reports job {job_id} COMPLETED but no exit record was written"],
            "gotchas": ["U3"],
        }
    elif state == "FAILED" and restarts > int_or_zero(last.get("attempt", -1)):
        diag = {
            "cause": "unknown",
            "evidence": [
                f"attempt {restarts + 1} of job {job_id} ended (FAILED, exit {code}) before "
                "outlive's supervisor started: the batch script or srun failed; see stdout.log "
                "and the node's slurmd log"
            ],
            "gotchas": ["U3"],
        }
    elif state == "FAILED" and last.get("requeue"):
        diag = {
            "cause": "unknown",
            "evidence": [
                f"the job saved and asked to run again, but `scontrol requeue {job_id}` failed "
                "in the batch script (is requeue allowed on this partition?)"
            ],
            "gotchas": ["SLURM1"],
        }
    else:
        diag = {
            "cause": "killed" if state != "FAILED" else "unknown",
            "evidence": [f"Slurm reports job {job_id} {state} (exit {row.get('exit_code')})"],
            "gotchas": ["U3"],
        }
    out["diagnosis"] = diag
    return out


def slurm_judge(rec: Rec) -> Rec:
    """A Slurm run's status (probe_one's shape plus ``restarts`` and ``slurm``) from its own
    records, which win once the run is over, and the scheduler's view while it is not."""
    launch = rec.get("launch") or {}
    exit_rec = rec.get("exit")
    attempts = rec.get("attempts") or []
    end = rec.get("end") or {}
    row = rec.get("scheduler") or end.get("scheduler") or {}
    if not rec.get("accounting") and end.get("accounting"):
        rec["accounting"] = end["accounting"]
    if not rec.get("scheduler") and row:
        rec["scheduler"] = row
    raw = row.get("State") or _acct_state(rec.get("accounting"))
    job_id = str(rec.get("job_id") or "?")
    # Attempt n exists only after n restarts; the scheduler's count leads while it knows the job.
    restarts = max(
        [int_or_zero(row.get("RestartCnt")), int_or_zero(launch.get("attempt"))]
        + [int_or_zero(a.get("attempt")) for a in attempts]
    )
    saves = [float(a["term_to_exit_s"]) for a in attempts if a.get("term_to_exit_s")]
    out: Rec = {
        "run_id": rec.get("run_id"),
        "name": rec.get("name"),
        "run_dir": rec.get("run_dir"),
        "ckpt_dir": rec.get("ckpt_dir"),
        "exit_code": None,
        "signal": None,
        "pid": launch.get("pid"),
        "supervisor_pid": launch.get("supervisor_pid"),
        "started_at": launch.get("started_at"),
        "ended_at": None,
        "heartbeat_age_s": rec.get("heartbeat_age_s"),
        "progress": rec.get("progress"),
        "diagnosis": None,
        "cancel_requested": bool(rec.get("cancel_requested")),
        "restarts": restarts,
        "slurm": {
            "job_id": rec.get("job_id"),
            "state": raw,
            "reason": row.get("Reason") if row.get("Reason") not in (None, "", "None") else None,
            "restarts": restarts,
            "node": launch.get("node") or row.get("NodeList") or None,
            "time_limit": row.get("TimeLimit"),
            "attempts": len(attempts),
            "save_s": max(saves) if saves else None,
        },
    }
    if rec.get("scheduler_error"):
        out["slurm"]["error"] = rec["scheduler_error"]
    if exit_rec is not None:
        out.update(
            exit_code=exit_rec.get("exit_code"),
            signal=exit_rec.get("signal"),
            ended_at=exit_rec.get("ended_at"),
            max_rss_bytes=exit_rec.get("max_rss_bytes"),
        )
        if exit_rec.get("exit_code") == 0:
            out["state"] = "succeeded"
        elif rec.get("cancel_requested"):
            out["state"] = "cancelled"
        else:
            out["state"] = "failed"
            grew = (count_of(exit_rec.get("oom_kill_after")) or 0) > (
                count_of(launch.get("oom_kill_baseline")) or 0
            )
            if raw == "OUT_OF_MEMORY" or (exit_rec.get("signal") and grew):
                out["diagnosis"] = {
                    "cause": "oom",
                    "evidence": _oom_advice(rec, job_id),
                    "gotchas": ["SLURM4", "U9"],
                }
            elif exit_rec.get("signal"):
                out["diagnosis"] = {
                    "cause": "killed",
                    "evidence": [f"the job died of {exit_rec.get('signal_name') or 'a signal'}"],
                    "gotchas": ["U3"],
                }
        return out
    # scontrol requeue counts the restart at once, while the old attempt is still COMPLETING.
    being_requeued = bool(launch) and restarts > int_or_zero(launch.get("attempt"))
    if raw in _SLURM_PENDING:
        out["state"] = "requeued" if restarts > 0 else "pending"
    elif raw in _SLURM_REQUEUED or (raw == "COMPLETING" and being_requeued):
        out["state"] = "requeued"
    elif raw in SLURM_TERMINAL:
        out.update(_slurm_ended(rec, raw, job_id, restarts))
    elif raw:
        out["state"] = "running"
    elif rec.get("scheduler_error"):
        out["state"] = "running" if launch else "pending"
        out["warning"] = (
            f"the scheduler did not answer ({rec['scheduler_error']}); the state is the run's "
            "own last record"
        )
    else:
        out["state"] = "vanished"
        out["diagnosis"] = {
            "cause": "unknown",
            "evidence": [
                f"Slurm no longer knows job {job_id} (it forgets ended jobs after MinJobAge and "
                "this cluster keeps no accounting) and the run left no exit record"
            ],
            "gotchas": ["U3"],
        }
    if out["state"] != "running" or (launch and int_or_zero(launch.get("attempt")) != restarts):
        out["pid"] = out["supervisor_pid"] = None  # no process of this attempt runs
    return out
