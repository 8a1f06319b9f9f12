"""The vanished-process ladder sharpened by the kernel log (U3, U41, U22), and the doctor
report: the cause the evidence supports, and what could not be checked."""

from __future__ import annotations

from typing import Any

from diag_facts import fixture, fs, gpu_facts, no_gpu_facts

from outlive.diagnose.doctor import doctor_report, walk_ladder
from outlive.diagnose.model import GIB

BTIME = 1_700_000_000
HOST = {"btime": BTIME, "now": BTIME + 9000.0, "uptime_s": 9000.0, "cpu_count": 8}
MEMCG = "/sys/fs/cgroup/system.slice/docker-3f2a9c.scope"


def _launch(
    pid: int = 48211, baseline: int | None = 0, started_k: float = 7000.0
) -> dict[str, Any]:
    return {
        "pid": pid,
        "pgid": pid,
        "supervisor_pid": pid - 1,
        "boot_id": "b1",
        "memory_cgroup": MEMCG,
        "oom_kill_baseline": baseline,
        "started_at": BTIME + started_k,
    }


def _probe(cause: str = "killed", state: str = "vanished") -> dict[str, Any]:
    return {
        "state": state,
        "pid": 48211,
        "diagnosis": {
            "cause": cause,
            "evidence": ["the supervisor and the job are both gone and no exit record was written"],
            "gotchas": ["U3"],
        },
    }


def _dmesg(*names: str, first: str = "[    0.000000] Linux version 5.15.0") -> dict[str, Any]:
    lines = [ln for n in names for ln in fixture(n).splitlines()]
    return {
        "readable": True,
        "error": None,
        "lines": lines,
        "first_line": first,
        "lines_dropped": 0,
    }


def _names(ladder_checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in ladder_checks}


def test_an_oom_kill_of_the_job_in_the_kernel_log_makes_the_cause_oom() -> None:
    ladder = walk_ladder(
        _probe(), _launch(baseline=None), None, HOST, _dmesg("dmesg_oom_memcg.txt")
    )
    assert ladder.diagnosis is not None
    assert ladder.diagnosis["cause"] == "oom"
    assert ladder.diagnosis["gotchas"] == ["U3", "U9", "U41"]
    assert any("Killed process 48211 (python)" in e for e in ladder.diagnosis["evidence"])
    assert _names(ladder.checks)["oom (kernel log)"].status.value == "FAIL"
    assert any("oom_kill counter" in c for c in ladder.could_not_check)


def test_a_worker_killed_in_the_runs_cgroup_counts_as_the_run() -> None:
    ladder = walk_ladder(_probe(), _launch(pid=48000), None, HOST, _dmesg("dmesg_oom_memcg.txt"))
    assert ladder.diagnosis is not None and ladder.diagnosis["cause"] == "oom"


def test_an_oom_kill_of_someone_else_does_not_change_the_cause() -> None:
    launch = _launch(pid=10)
    launch["memory_cgroup"] = "/sys/fs/cgroup/other.scope"
    ladder = walk_ladder(_probe(), launch, None, HOST, _dmesg("dmesg_oom_memcg.txt"))
    assert ladder.diagnosis is not None and ladder.diagnosis["cause"] == "killed"
    check = _names(ladder.checks)["oom (kernel log)"]
    assert check.status.value == "WARN" and "pid 48211 (python)" in check.detail
    assert any("no OOM kill of the job (pid 10)" in e for e in ladder.diagnosis["evidence"])
    assert any("who sent the kill" in c for c in ladder.could_not_check)


def test_an_old_kill_of_a_reused_pid_before_the_run_is_not_the_run() -> None:
    ladder = walk_ladder(
        _probe(), _launch(started_k=8000.0), None, HOST, _dmesg("dmesg_oom_memcg.txt")
    )
    assert ladder.diagnosis is not None and ladder.diagnosis["cause"] == "killed"


def test_unreadable_kernel_log_is_listed_and_nothing_is_guessed() -> None:
    dmesg = {
        "readable": False,
        "error": "dmesg exited 1: dmesg: read kernel buffer failed: Operation not permitted",
        "dmesg_restrict": "1",
        "missing": False,
        "lines": [],
    }
    ladder = walk_ladder(_probe(), _launch(), None, HOST, dmesg)
    assert ladder.diagnosis is not None and ladder.diagnosis["cause"] == "killed"
    checks = _names(ladder.checks)
    assert checks["oom (kernel log)"].status.value == "SKIP"
    assert checks["xid"].status.value == "SKIP"
    text = " ".join(ladder.could_not_check)
    assert "Operation not permitted" in text and "dmesg_restrict=1" in text
    assert "cannot be ruled out" in text


def test_reboot_keeps_its_cause_and_says_the_old_kernel_log_is_gone() -> None:
    ladder = walk_ladder(_probe("reboot"), _launch(), None, HOST, _dmesg("dmesg_oom_memcg.txt"))
    assert ladder.diagnosis is not None and ladder.diagnosis["cause"] == "reboot"
    assert any("up for 9000 s" in e for e in ladder.diagnosis["evidence"])
    check = _names(ladder.checks)["oom (kernel log)"]
    assert check.status.value == "SKIP" and "lost with the reboot" in check.detail


def test_xid_79_during_the_run_fails_and_joins_the_evidence() -> None:
    ladder = walk_ladder(_probe(), _launch(started_k=1000.0), None, HOST, _dmesg("dmesg_xid.txt"))
    xid = _names(ladder.checks)["xid"]
    assert xid.status.value == "FAIL"
    assert "Xid 79 on 0000:3b:00 during the run" in xid.detail and "rent another" in xid.detail
    assert ladder.diagnosis is not None and "U22" in ladder.diagnosis["gotchas"]


def test_only_application_xids_warn() -> None:
    dmesg = _dmesg()
    dmesg["lines"] = fixture("dmesg_xid.txt").splitlines()[:2]
    xid = _names(walk_ladder(_probe(), _launch(), None, HOST, dmesg).checks)["xid"]
    assert xid.status.value == "WARN" and "13, 31" in xid.detail


def test_a_rotated_ring_buffer_is_listed() -> None:
    dmesg = _dmesg(first="[ 8500.000000] something late")
    ladder = walk_ladder(_probe(), _launch(started_k=7000.0), None, HOST, dmesg)
    assert any("rotated" in c for c in ladder.could_not_check)


def test_a_running_run_gets_no_diagnosis() -> None:
    probe = {"state": "running", "pid": 1, "diagnosis": None}
    ladder = walk_ladder(probe, _launch(), None, HOST, _dmesg())
    assert ladder.diagnosis is None and ladder.could_not_check == []


def _facts(**over: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "probe": _probe(),
        "launch": _launch(),
        "exit": None,
        "host": HOST,
        "run_cgroup": {
            "memory_dir": MEMCG,
            "files": {"memory.max": "max", "memory.current": "1"},
            "oom_kill": 0,
        },
        "job_cgroup": None,
        "dmesg": _dmesg(),
        "gpu": no_gpu_facts(),
        "vram_holders": None,
        "disks": {
            "run_dir": fs("/w/.outlive/runs/r", free_bytes=50 * GIB),
            "ckpt_dir": fs("/d/n", free_bytes=50 * GIB, free_inodes=0),
        },
        "threads": None,
    }
    facts.update(over)
    return facts


def test_doctor_report_shape_on_a_vanished_run_without_gpu() -> None:
    report = doctor_report("r1", _facts())
    assert set(report) == {
        "run_id",
        "state",
        "verdict",
        "diagnosis",
        "log_matches",
        "checks",
        "could_not_check",
    }
    assert report["state"] == "vanished" and report["diagnosis"]["cause"] == "killed"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["run"]["status"] == "FAIL"
    assert checks["gpu"]["status"] == "WARN"
    assert (
        checks["inodes durable"]["status"] == "FAIL" and "U7" in checks["inodes durable"]["gotchas"]
    )
    assert "threads" not in checks and "gpu feed" not in checks
    assert any(c.startswith("GPU: nvidia-smi is not installed") for c in report["could_not_check"])
    for c in report["checks"]:
        assert set(c) == {"name", "status", "detail", "gotchas"}


def test_doctor_report_on_a_running_run_samples_feed_and_threads() -> None:
    facts = _facts(
        probe={"state": "running", "pid": 48211, "diagnosis": None, "heartbeat_age_s": 3.0},
        gpu=gpu_facts(dmon="dmon_pucv_underfed.txt"),
        vram_holders={"holders": [], "unreadable": 0},
        threads={"procs": [{"pid": 48211, "threads": 9, "running": 2}], "env": {}},
    )
    report = doctor_report("r1", facts)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["run"]["status"] == "PASS" and "last heartbeat 3 s ago" in checks["run"]["detail"]
    assert checks["gpu feed"]["status"] == "WARN"
    assert checks["threads"]["status"] == "PASS"
    assert report["diagnosis"] is None
