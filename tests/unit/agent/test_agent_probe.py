"""Status truth from the box's own records: liveness is (pid, start time), never the pid alone;
exit records, cancel requests, boot ids and cgroup counters decide the state and the diagnosis;
progress and heartbeat come from progress.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from outlive.agent.box import procfs as box_procfs
from outlive.agent.box import runs as box_runs
from outlive.agent.box.process_state import diagnose
from outlive.agent.box.procfs import is_alive, proc_start_ticks
from outlive.agent.box.runs import probe_one
from outlive.testing import DEADLINE_S

BOOT = "11111111-2222-3333-4444-555555555555"


def _dead_pid() -> int:
    """The pid of a child that has exited and been reaped. Records below pair it with start
    tick 1, so even a pid reused in the meantime cannot look like the recorded process."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _run_dir(tmp_path: Path, **launch: object) -> Path:
    """A run dir with run.json and (when given fields) launch.json, as the agent writes them."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "run.json").write_text(
        json.dumps({"run_id": "r1", "name": "n", "command": ["x"], "ckpt_dir": "/ck"})
    )
    if launch:
        record = {
            "pid": None,
            "start_ticks": None,
            "supervisor_pid": None,
            "supervisor_start_ticks": None,
            "boot_id": BOOT,
            "memory_cgroup": None,
            "oom_kill_baseline": None,
            "started_at": 1000.0,
        }
        record.update(launch)
        (d / "launch.json").write_text(json.dumps(record))
    return d


def _write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data))


# --- liveness -----------------------------------------------------------------------------------


def test_own_process_with_its_start_time_is_alive():
    me = os.getpid()
    ticks = proc_start_ticks(me)
    assert isinstance(ticks, int) and ticks > 0
    assert is_alive(me, ticks)
    assert is_alive(me, None)  # no recorded start time: the pid alone is all there is


def test_a_reused_pid_with_another_start_time_is_not_alive():
    me = os.getpid()
    assert not is_alive(me, proc_start_ticks(me) + 1)


def test_missing_exited_and_zombie_processes_are_not_alive():
    assert not is_alive(None, None) and not is_alive(0, None)
    assert not is_alive(_dead_pid(), None)
    zombie = subprocess.Popen(["true"])
    try:
        stat_path = Path(f"/proc/{zombie.pid}/stat")
        deadline = time.monotonic() + DEADLINE_S
        while stat_path.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        assert proc_start_ticks(zombie.pid) is None
        assert not is_alive(zombie.pid, None)
    finally:
        zombie.wait()


# --- probe: state from the records ----------------------------------------------------------


def test_probe_without_launch_record_is_pending(tmp_path):
    st = probe_one(str(_run_dir(tmp_path)), BOOT, time.time())
    assert st["state"] == "pending" and st["pid"] is None


def test_probe_without_a_readable_spec_is_unknown_with_a_reason(tmp_path):
    st = probe_one(str(tmp_path / "nowhere"), BOOT, time.time())
    assert st["state"] == "unknown" and "run.json" in st["error"]


def test_probe_of_live_pids_with_matching_start_times_is_running(tmp_path):
    me, ticks = os.getpid(), proc_start_ticks(os.getpid())
    d = _run_dir(
        tmp_path, pid=me, start_ticks=ticks, supervisor_pid=me, supervisor_start_ticks=ticks
    )
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "running" and st["pid"] == me and st["supervisor_pid"] == me
    assert "warning" not in st


def test_probe_with_reused_pids_is_vanished_not_running(tmp_path):
    me, ticks = os.getpid(), proc_start_ticks(os.getpid())
    d = _run_dir(
        tmp_path,
        pid=me,
        start_ticks=ticks + 7,
        supervisor_pid=me,
        supervisor_start_ticks=ticks + 7,
        oom_kill_baseline=0,
    )
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "vanished"
    assert st["diagnosis"]["cause"] == "killed" and "U3" in st["diagnosis"]["gotchas"]


def test_probe_warns_when_the_job_outlived_its_supervisor(tmp_path):
    me, ticks = os.getpid(), proc_start_ticks(os.getpid())
    d = _run_dir(
        tmp_path, pid=me, start_ticks=ticks, supervisor_pid=_dead_pid(), supervisor_start_ticks=1
    )
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "running" and "supervisor is gone" in st["warning"]


def test_probe_after_a_reboot_is_vanished_with_cause_reboot(tmp_path):
    me, ticks = os.getpid(), proc_start_ticks(os.getpid())
    # Same pid and start time as a live process, but the boot id says it is another machine life.
    d = _run_dir(tmp_path, pid=me, start_ticks=ticks, supervisor_pid=me, boot_id="old-boot")
    st = probe_one(str(d), "new-boot", time.time())
    assert st["state"] == "vanished"
    diag = st["diagnosis"]
    assert diag["cause"] == "reboot" and diag["gotchas"] == ["U3", "GEN6"]
    assert "old-boot" in diag["evidence"][0] and "new-boot" in diag["evidence"][0]


def test_probe_of_a_vanished_run_whose_cgroup_counter_grew_is_oom(tmp_path):
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "memory.events").write_text("oom 1\noom_kill 1\n")
    d = _run_dir(
        tmp_path, pid=_dead_pid(), start_ticks=1, memory_cgroup=str(cg), oom_kill_baseline=0
    )
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "vanished"
    assert st["diagnosis"]["cause"] == "oom"
    assert "oom_kill counter grew from 0 to 1" in st["diagnosis"]["evidence"][0]


@pytest.mark.parametrize(
    ("exit_rec", "cancel", "state"),
    [
        ({"exit_code": 0, "signal": None}, False, "succeeded"),
        ({"exit_code": 2, "signal": None}, False, "failed"),
        ({"exit_code": None, "signal": 9, "signal_name": "SIGKILL"}, False, "failed"),
        ({"exit_code": 75, "signal": None}, True, "cancelled"),
        ({"exit_code": None, "signal": 9, "signal_name": "SIGKILL"}, True, "cancelled"),
        ({"exit_code": 0, "signal": None}, True, "succeeded"),
    ],
)
def test_probe_state_follows_the_exit_record_and_cancel_request(tmp_path, exit_rec, cancel, state):
    d = _run_dir(tmp_path, pid=_dead_pid(), start_ticks=1, oom_kill_baseline=0)
    _write(d / "exit.json", {"ended_at": 1001.0, "max_rss_bytes": 4096, **exit_rec})
    if cancel:
        _write(d / "cancel.json", {"requested_at": 1000.5, "grace_s": 1})
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == state
    assert (st["exit_code"], st["signal"]) == (exit_rec["exit_code"], exit_rec["signal"])
    assert st["ended_at"] == 1001.0 and st["max_rss_bytes"] == 4096
    assert st["cancel_requested"] is cancel
    if state == "failed" and exit_rec["signal"]:
        assert st["diagnosis"]["cause"] == "killed"
        assert "the job died of SIGKILL" in st["diagnosis"]["evidence"]
    else:
        assert st["diagnosis"] is None


def test_probe_survives_an_unreadable_exit_record(tmp_path):
    """A torn exit.json (a crash on a filesystem that lost the write) must not break the probe,
    which answers for every run of the target at once."""
    d = _run_dir(tmp_path, pid=_dead_pid(), start_ticks=1, oom_kill_baseline=0)
    (d / "exit.json").write_text('{"exit_code": 0, "sig')
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "vanished" and "exit.json" in st["error"]
    assert st["diagnosis"]["evidence"]


@pytest.mark.parametrize(
    ("exit_rec", "why"),
    [
        ({"exit_code": "0", "signal": None}, "its exit_code is '0'"),
        ({"exit_code": None, "signal": 9, "oom_kill_after": "3"}, "its oom_kill_after is '3'"),
        ({"exit_code": True, "signal": None}, "its exit_code is True"),
        ({"exit_code": 1, "ended_at": "yesterday"}, "its ended_at is 'yesterday'"),
        ({"exit_code": 1, "forwarded_signals": 15}, "its forwarded_signals is 15"),
        ({"ended_at": 1001.0}, "it holds neither an exit code nor a signal"),
        ([0], "it is not a JSON object"),
    ],
    ids=["code-string", "oom-string", "code-bool", "time-string", "signals-int", "empty", "list"],
)
def test_a_damaged_exit_record_is_read_as_damaged_not_computed_with(tmp_path, exit_rec, why):
    """A hand-edited or half-restored exit.json whose fields have the wrong types (or none of the
    fields that say how the job ended) must not fail the probe of every run on the target, nor
    pass for an end: the run's end is unknown, and the error says why."""
    d = _run_dir(tmp_path, pid=_dead_pid(), start_ticks=1, oom_kill_baseline=0)
    _write(d / "exit.json", exit_rec)
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "vanished", st
    assert (
        st["error"]
        == f"the exit record {d / 'exit.json'} is damaged ({why}); its run's end is unknown"
    )
    assert st["exit_code"] is None and st["ended_at"] is None


def test_a_damaged_oom_baseline_in_launch_json_is_no_counter(tmp_path):
    d = _run_dir(tmp_path, pid=_dead_pid(), start_ticks=1, oom_kill_baseline="0")
    _write(d / "exit.json", {"exit_code": None, "signal": 9, "signal_name": "SIGKILL",
                             "oom_kill_after": 3})  # fmt: skip
    st = probe_one(str(d), BOOT, time.time())
    assert st["state"] == "failed" and st["diagnosis"]["cause"] == "killed"
    assert any("cannot be ruled out" in e for e in st["diagnosis"]["evidence"])


# --- diagnosis ----------------------------------------------------------------------------------


def test_diagnose_uses_the_counter_recorded_at_exit_even_if_the_cgroup_is_gone():
    launch = {"boot_id": BOOT, "memory_cgroup": "/gone", "oom_kill_baseline": 2}
    diag = diagnose(launch, {"signal": 9, "oom_kill_after": 3}, BOOT, None)
    assert diag["cause"] == "oom" and diag["gotchas"] == ["U3", "U41"]
    assert "grew from 2 to 3" in diag["evidence"][0]


def test_diagnose_says_oom_cannot_be_ruled_out_without_a_counter():
    diag = diagnose({"boot_id": BOOT}, None, BOOT, None)
    assert diag["cause"] == "killed"
    assert any("cannot be ruled out" in e for e in diag["evidence"])
    assert any("no exit record" in e for e in diag["evidence"])


def test_diagnose_names_a_hangup():
    diag = diagnose({"oom_kill_baseline": 0}, {"signal": 1, "signal_name": "SIGHUP"}, BOOT, 0)
    assert diag["cause"] == "hangup" and "GEN2" in diag["gotchas"]


# --- progress and heartbeat ---------------------------------------------------------------------


def test_progress_is_the_last_complete_record_and_heartbeat_is_the_files_age(tmp_path):
    d = _run_dir(tmp_path, pid=_dead_pid(), start_ticks=1)
    progress = d / "progress.jsonl"
    progress.write_text(
        '{"ts": 1.0, "step": 1, "loss": 0.9}\n{"ts": 2.0, "step": 2, "loss": 0.5}\n{"ts": 3.0, "st'
    )
    mtime = time.time() - 100
    os.utime(progress, (mtime, mtime))
    st = probe_one(str(d), BOOT, mtime + 100)
    assert st["progress"] == {"ts": 2.0, "step": 2, "loss": 0.5}
    assert st["heartbeat_age_s"] == pytest.approx(100.0)


def test_no_progress_file_means_no_progress_and_no_heartbeat(tmp_path):
    st = probe_one(str(_run_dir(tmp_path, pid=_dead_pid(), start_ticks=1)), BOOT, time.time())
    assert st["progress"] is None and st["heartbeat_age_s"] is None


def test_verb_probe_answers_for_many_runs_in_one_call(tmp_path):
    a = _run_dir(tmp_path)
    reply = box_runs.verb_probe({"run_dirs": [str(a), str(tmp_path / "missing")]})
    assert [r["state"] for r in reply["runs"]] == ["pending", "unknown"]
    assert reply["boot_id"] == box_procfs.boot_id()


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_never_signals_a_process_group_the_launch_record_cannot_vouch_for(tmp_path):
    """A damaged launch.json whose pgid is not the job's own group (its pid) had the cancel
    signal that group: here an unrelated process's, on a box any (pid 1's, the agent's)."""
    from outlive.agent.box import process

    job = subprocess.Popen(["sleep", "600"], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        d = _run_dir(tmp_path, pid=job.pid, pgid=bystander.pid, start_ticks=None)
        reply = process.cancel(str(d), {"run_id": "r1"}, 0.1)
        assert reply["signalled"] is None and "nothing was signalled" in reply["note"]
        assert bystander.poll() is None and job.poll() is None
        (tmp_path / "ok").mkdir()
        d2 = _run_dir(tmp_path / "ok", pid=job.pid, pgid=job.pid, start_ticks=None)
        assert process.cancel(str(d2), {"run_id": "r1"}, 1.0)["signalled"] == "job"
        assert job.wait(timeout=DEADLINE_S) == -15 and bystander.poll() is None
    finally:
        for proc in (job, bystander):
            proc.kill()
            proc.wait()
