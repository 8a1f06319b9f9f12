"""``doctor``'s one ranked verdict: the run's own evidence (exit record and ladder, its log
matched against the catalog, the box facts) weighed together, with the fix of the winner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diag_facts import fs
from test_doctor_ladder import _facts, _probe

from outlive.diagnose.doctor import doctor_report
from outlive.diagnose.model import GIB
from outlive.gotchas import by_id, explain_file, explain_text

PUBLIC = Path(__file__).resolve().parents[1] / "gotchas" / "fixtures" / "public"
ROOMY = {
    "run_dir": fs("/w/.outlive/runs/r", free_bytes=50 * GIB),
    "ckpt_dir": fs("/d/n", free_bytes=50 * GIB),
}


def _report(log: str | None = None, **over: Any) -> dict[str, Any]:
    facts = _facts(**{"disks": ROOMY, **over})
    matches = None if log is None else explain_file(PUBLIC / log)
    return dict(doctor_report("r1", facts, matches, None if log else "no log in this test"))


def test_an_exact_log_signature_outranks_a_bare_killed() -> None:
    report = _report("X1.llamafactory.log")
    verdict = report["verdict"]
    assert verdict["status"] == "FAIL" and verdict["gotchas"] == ["X1"]
    assert verdict["fix"] == by_id("X1").fix and verdict["sources"] == ["log"]
    assert verdict["evidence"][0].startswith("log line 3: ")
    assert verdict["also"] == ["U3 (exit)"]
    assert report["log_matches"][0]["id"] == "X1"


def test_a_kernel_oom_kill_outranks_a_vague_log_line() -> None:
    probe = _probe(cause="oom")
    probe["diagnosis"]["gotchas"] = ["U3", "U41"]
    report = doctor_report("r1", _facts(probe=probe, disks=ROOMY), explain_text("Killed\n"), None)
    verdict = report["verdict"]
    assert verdict is not None and verdict["cause"] == "oom" and verdict["gotchas"][0] == "U3"
    assert verdict["also"] == ["U9 (log)"]


def test_a_log_line_naming_the_diagnosis_corroborates_it_instead_of_competing() -> None:
    probe = _probe(cause="hangup")
    probe["diagnosis"]["gotchas"] = ["U3", "GEN2"]
    report = doctor_report(
        "r1", _facts(probe=probe, disks=ROOMY), explain_file(PUBLIC / "GEN2.torchrun_sighup.log")
    )
    verdict = report["verdict"]
    assert verdict is not None and verdict["cause"] == "hangup"
    assert verdict["sources"] == ["exit", "log"] and verdict["also"] == []
    assert any("Received 1 death signal" in e for e in verdict["evidence"])


def test_a_failed_box_check_is_the_verdict_when_the_log_says_nothing() -> None:
    report = _report(log=None, disks=_facts()["disks"])  # durable disk out of inodes
    verdict = report["verdict"]
    assert verdict["sources"] == ["box"] and "U7" in verdict["gotchas"]
    assert verdict["fix"] == by_id("U7").fix
    assert any(c.startswith("run log: no log in this test") for c in report["could_not_check"])


def test_a_failed_run_without_a_diagnosis_still_gets_a_verdict_from_its_exit() -> None:
    probe = {"state": "failed", "pid": 48211, "exit_code": 3, "diagnosis": None}
    report = doctor_report("r1", _facts(probe=probe, disks=ROOMY), [], None)
    verdict = report["verdict"]
    assert verdict is not None and verdict["status"] == "FAIL"
    assert verdict["cause"] == "failed with exit code 3" and verdict["fix"] == ""
    assert not any(c.startswith("run log") for c in report["could_not_check"])


def test_a_healthy_running_run_has_no_verdict() -> None:
    probe = {"state": "running", "pid": 48211, "diagnosis": None, "heartbeat_age_s": 2.0}
    report = doctor_report("r1", _facts(probe=probe, disks=ROOMY), [], None)
    assert report["verdict"] is None and report["log_matches"] == []


def test_without_the_whole_log_the_tail_the_box_sent_is_matched_and_said_so() -> None:
    tail = (PUBLIC / "X6.caduceus.log").read_text(encoding="utf-8")
    probe = {"state": "failed", "pid": 48211, "exit_code": 1, "diagnosis": None}
    facts = _facts(probe=probe, disks=ROOMY, log_tail=tail)
    report = doctor_report("r1", facts, None, "the box did not answer")
    verdict = report["verdict"]
    assert verdict is not None and verdict["gotchas"] == ["X6"]
    assert verdict["also"] == ["failed with exit code 1 (exit)"]
    checks = {c["name"]: c for c in report["checks"]}
    assert "its log says" in checks["run"]["detail"] and checks["run"]["gotchas"] == ["X6"]
    assert any("only in the last 64 KiB" in c for c in report["could_not_check"])
