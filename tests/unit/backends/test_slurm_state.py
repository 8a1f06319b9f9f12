"""A Slurm run's state from its own records and the scheduler's view (the agent's slurm_judge),
and the probe's scheduler calls read from a stand-in ``squeue`` printing Slurm 22.05's format:
pending with its reason, requeued with the restart count, OUT_OF_MEMORY with SLURM4's advice,
TIMEOUT (SLURM2), and an ended job remembered after squeue forgets it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from outlive.agent.box import runs as box_runs
from outlive.agent.box.slurm_state import slurm_judge, slurm_probe


def rec(**over: Any) -> dict[str, Any]:
    """The probe's facts about one Slurm run, as _slurm_records gathers them."""
    base: dict[str, Any] = {
        "backend": "slurm",
        "run_id": "r1",
        "name": "n",
        "run_dir": "/runs/r1",
        "ckpt_dir": "/ck/n",
        "job_id": "42",
        "launch": None,
        "exit": None,
        "end": None,
        "attempts": [],
        "cancel_requested": False,
        "progress": None,
        "heartbeat_age_s": None,
        "scheduler": None,
        "accounting": None,
        "scheduler_error": None,
    }
    base.update(over)
    return base


def row(state: str, reason: str = "None", restarts: int = 0, **over: str) -> dict[str, str]:
    out = {
        "JobID": "42",
        "State": state,
        "Reason": reason,
        "RestartCnt": str(restarts),
        "exit_code": "0",
        "NodeList": "node7",
        "TimeLimit": "1:00:00",
        "MinMemory": "2000M",
    }
    out.update(over)
    return out


LAUNCH = {"pid": 10, "supervisor_pid": 9, "started_at": 100.0, "attempt": 0, "node": "node7"}


def test_pending_reports_the_schedulers_reason() -> None:
    st = slurm_judge(rec(scheduler=row("PENDING", "Resources")))
    assert st["state"] == "pending" and st["restarts"] == 0
    assert st["slurm"]["reason"] == "Resources" and st["pid"] is None


def test_pending_after_a_requeue_is_requeued_with_the_restart_count() -> None:
    attempt0 = {"attempt": 0, "requeue": True, "term_to_exit_s": 3.5, "exit_code": 75}
    st = slurm_judge(
        rec(scheduler=row("PENDING", "BeginTime", 1), launch=LAUNCH, attempts=[attempt0])
    )
    assert st["state"] == "requeued" and st["restarts"] == 1
    assert st["slurm"]["reason"] == "BeginTime" and st["slurm"]["save_s"] == 3.5
    assert st["pid"] is None  # nothing of the old attempt runs


def test_completing_while_slurm_requeues_is_already_requeued() -> None:
    st = slurm_judge(rec(scheduler=row("COMPLETING", restarts=1), launch=LAUNCH))
    assert st["state"] == "requeued" and st["restarts"] == 1


def test_running_shows_the_attempts_processes_and_node() -> None:
    st = slurm_judge(rec(scheduler=row("RUNNING"), launch=LAUNCH))
    assert st["state"] == "running" and st["pid"] == 10 and st["slurm"]["node"] == "node7"


def test_the_exit_record_decides_once_the_run_is_over() -> None:
    exit_rec = {"exit_code": 0, "signal": None, "ended_at": 200.0, "max_rss_bytes": 1}
    st = slurm_judge(rec(exit=exit_rec, launch=LAUNCH, scheduler=None))
    assert st["state"] == "succeeded" and st["ended_at"] == 200.0
    st = slurm_judge(rec(exit={**exit_rec, "exit_code": 75}, cancel_requested=True))
    assert st["state"] == "cancelled"
    st = slurm_judge(rec(exit={**exit_rec, "exit_code": 1}))
    assert st["state"] == "failed" and st["exit_code"] == 1 and st["diagnosis"] is None


def test_timeout_without_a_save_is_failed_and_names_the_signal_lead() -> None:
    st = slurm_judge(rec(scheduler=row("TIMEOUT", "TimeLimit", exit_code="15"), launch=LAUNCH))
    assert st["state"] == "failed"
    assert st["diagnosis"]["cause"] == "killed" and "SLURM2" in st["diagnosis"]["gotchas"]
    assert "time limit (1:00:00)" in st["diagnosis"]["evidence"][0]
    assert st["signal"] == 15


def test_out_of_memory_gives_the_maxrss_reqmem_advice() -> None:
    acct = [
        {"JobID": "42", "State": "OUT_OF_MEMORY", "ExitCode": "0:125", "ReqMem": "2000M"},
        {"JobID": "42.batch", "State": "OUT_OF_MEMORY", "MaxRSS": "2150400K", "ReqMem": ""},
    ]
    st = slurm_judge(rec(scheduler=None, accounting=acct, launch=LAUNCH))
    assert st["state"] == "failed" and st["slurm"]["state"] == "OUT_OF_MEMORY"
    diag = st["diagnosis"]
    assert diag["cause"] == "oom" and diag["gotchas"] == ["SLURM4", "U9"]
    assert "MaxRSS 2100 MiB of ReqMem 2000 MiB" in diag["evidence"][1]
    assert "2520M" in diag["evidence"][1]  # 2100 MiB x 1.2


def test_out_of_memory_without_accounting_says_where_to_look() -> None:
    st = slurm_judge(rec(scheduler=row("OUT_OF_MEMORY", exit_code="0")))
    assert st["diagnosis"]["cause"] == "oom"
    assert "sacct -j 42 -o MaxRSS,ReqMem" in st["diagnosis"]["evidence"][1]


def test_cancelled_by_the_scheduler_is_cancelled() -> None:
    assert slurm_judge(rec(scheduler=row("CANCELLED")))["state"] == "cancelled"


def test_an_attempt_that_never_reached_the_supervisor_is_named() -> None:
    attempt0 = {"attempt": 0, "requeue": True}
    st = slurm_judge(
        rec(scheduler=row("FAILED", "NonZeroExitCode", 1, exit_code="256"), attempts=[attempt0])
    )
    assert st["state"] == "failed" and st["exit_code"] == 1
    assert "attempt 2 of job 42" in st["diagnosis"]["evidence"][0]


def test_a_failed_self_requeue_is_named() -> None:
    attempt0 = {"attempt": 0, "requeue": True}
    st = slurm_judge(rec(scheduler=row("FAILED", exit_code="19200"), attempts=[attempt0]))
    assert st["exit_code"] == 75
    assert "scontrol requeue 42" in st["diagnosis"]["evidence"][0]


def test_a_job_the_scheduler_forgot_without_records_vanished() -> None:
    st = slurm_judge(rec(launch=LAUNCH))
    assert st["state"] == "vanished" and "MinJobAge" in st["diagnosis"]["evidence"][0]


def test_a_silent_scheduler_keeps_the_records_state_with_a_warning() -> None:
    st = slurm_judge(rec(launch=LAUNCH, scheduler_error="squeue did not answer within 20 s"))
    assert st["state"] == "running" and "did not answer" in st["warning"]


# --- the probe against a stand-in squeue ---------------------------------------------------------


@pytest.fixture
def fake_squeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `squeue` printing what the test puts in ``squeue.out`` (Slurm's -O "F:|,..." format),
    recording its argv; `sacct` fails as on a cluster without accounting."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "squeue").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/squeue.argv\ncat {tmp_path}/squeue.out 2>/dev/null\n'
    )
    (bindir / "sacct").write_text(
        "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"
    )
    for f in bindir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return tmp_path


def _slurm_run(root: Path, run_id: str, job_id: str) -> str:
    d = root / run_id
    d.mkdir()
    (d / "run.json").write_text(
        json.dumps({"run_id": run_id, "name": run_id, "backend": "slurm", "ckpt_dir": "/ck"})
    )
    (d / "slurm.json").write_text(json.dumps({"job_id": job_id}))
    return str(d)


def test_one_squeue_call_for_every_run_and_the_end_is_remembered(fake_squeue: Path) -> None:
    runs = [_slurm_run(fake_squeue, f"r{i}", str(40 + i)) for i in range(3)]
    fields = ["RUNNING", "None", "0", "0", "n1", "1:00", "0:05", "T", "T", "2000M"]
    (fake_squeue / "squeue.out").write_text(
        "40|40|N/A|" + "|".join(fields) + "|\n"
        "41|41|N/A|TIMEOUT|TimeLimit|0|15|n1|1:00|1:00|T|T|2000M|\n"
        "42|42|N/A|PENDING|Priority|0|0||1:00|0:00|N/A|N/A|2000M|\n"
    )
    states = {d: st["state"] for d, st in slurm_probe(runs, 0.0).items()}
    assert list(states.values()) == ["running", "failed", "pending"]
    calls = (fake_squeue / "squeue.argv").read_text().splitlines()
    assert len(calls) == 1 and "-j 40,41,42" in calls[0]
    assert (Path(runs[1]) / "slurm_end.json").is_file()
    (fake_squeue / "squeue.out").write_text("")  # squeue forgets ended jobs after MinJobAge
    again = slurm_probe([runs[1]], 0.0)[runs[1]]
    assert again["state"] == "failed" and again["slurm"]["state"] == "TIMEOUT"
    assert len((fake_squeue / "squeue.argv").read_text().splitlines()) == 1  # not asked again


def test_probe_one_of_a_slurm_run_is_judged_too(fake_squeue: Path) -> None:
    run = _slurm_run(fake_squeue, "r9", "49")
    (fake_squeue / "squeue.out").write_text(
        "49|49|N/A|PENDING|Resources|0|0||1:00|0:00|N/A|N/A|1G|\n"
    )
    st = box_runs.probe_one(run, None, 0.0)
    assert st["state"] == "pending" and st["slurm"]["reason"] == "Resources"


def test_array_tasks_are_keyed_array_task_as_slurm_names_them(fake_squeue: Path) -> None:
    runs = [_slurm_run(fake_squeue, f"a-{i}", f"70_{i}") for i in range(3)]
    # squeue -r prints a task's raw id as JobID, and the array's id for tasks not yet started.
    (fake_squeue / "squeue.out").write_text(
        "71|70|0|RUNNING|None|0|0|n1|1:00|0:05|T|T|1G|\n"
        "70|70|1|PENDING|JobArrayTaskLimit|0|0||1:00|0:00|N/A|N/A|1G|\n"
        "70|70|2|PENDING|JobArrayTaskLimit|0|0||1:00|0:00|N/A|N/A|1G|\n"
    )
    got = slurm_probe(runs, 0.0)
    assert [got[d]["state"] for d in runs] == ["running", "pending", "pending"]
    assert got[runs[2]]["slurm"]["reason"] == "JobArrayTaskLimit"
    assert "-j 70_0,70_1,70_2" in (fake_squeue / "squeue.argv").read_text()
