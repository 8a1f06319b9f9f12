"""Issue 12: a launch is journaled before it is sent and reconciled after; one live run per name
per target; a cancel whose supervisor is gone says what became of the run. All through the real
``outlive`` console script against the local target."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from local_helpers import DEFAULT_TIMEOUT_S, OUTLIVE, WAIT_JOB, Project, wait_for

from outlive.agent.box import procfs as box_procfs
from outlive.agent.box import records as box_records


def _popen_run(project: Project, name: str, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [OUTLIVE, "run", "--name", name, "--", *command],
        cwd=project.dir,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_cmd(project: Project, go: str) -> list[str]:
    if not (project.dir / "wait_job.py").exists():
        project.write("wait_job.py", WAIT_JOB)
    return [sys.executable, "wait_job.py", str(project.dir / go), "0"]


def _live_run_dirs(project: Project) -> dict[str, Path]:
    """Run dirs on the 'box' (here) whose job or supervisor is alive, by run id."""
    out = {}
    for run_dir in project.run_dirs():
        launch = box_records.read_json(str(run_dir / "launch.json"))
        if isinstance(launch, dict) and (
            box_procfs.is_alive(launch.get("pid"), launch.get("start_ticks"))
            or box_procfs.is_alive(
                launch.get("supervisor_pid"), launch.get("supervisor_start_ticks")
            )
        ):
            out[run_dir.name] = run_dir
    return out


def _launch_agents(project: Project) -> list[int]:
    """Pids of this project's agents still running a ``launch`` verb. The supervisor a launch
    forks keeps the agent's command line but leads its own session, so it is left out."""
    lib = os.fsencode(project.dir / ".outlive")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1]
            stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        leads_session = stat[3] == entry.encode()
        if argv[-1:] == [b"launch"] and any(a.startswith(lib) for a in argv) and not leads_session:
            pids.append(int(entry))
    return pids


def _status_all(project: Project) -> list[dict[str, object]]:
    done = project.cli("status", "--json", rc=None)
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, object]] = json.loads(done.stdout)["runs"]
    return runs


def _sql(project: Project, statement: str, *args: object) -> None:
    """Change the registry behind outlive's back (a lost or aged row)."""
    conn = sqlite3.connect(str(project.dir / ".outlive" / "registry.db"))
    with conn:
        conn.execute(statement, args)
    conn.close()


def _one_sentence(stderr: str) -> str:
    text = stderr.strip()
    assert "Traceback" not in text, text
    assert len(text.splitlines()) == 1, text
    return text


def test_a_second_run_of_a_running_name_is_refused_and_a_finished_one_is_taken_over(
    project: Project,
) -> None:
    first, go = project.start_waiting("held")
    project.wait_running(first)
    done = project.cli("run", "--name", "held", "--", sys.executable, "-c", "pass", rc=1)
    line = _one_sentence(done.stderr)
    assert f"held by run {first}" in line and f"outlive cancel {first}" in line
    assert [d.name for d in project.run_dirs()] == [first]
    go.touch()
    project.wait_ended(first)
    second = project.run(sys.executable, "-c", "pass", name="held")
    assert project.wait_ended(second)["state"] == "succeeded"


def test_a_name_held_on_the_box_is_refused_even_when_the_registry_lost_it(
    project: Project,
) -> None:
    first, go = project.start_waiting("boxheld")
    project.wait_running(first)
    _sql(project, "DELETE FROM runs")
    done = project.cli("run", "--name", "boxheld", "--", sys.executable, "-c", "pass", rc=1)
    assert f"outlive cancel {first}" in _one_sentence(done.stderr)
    go.touch()


@pytest.mark.parametrize("rounds", [3])
def test_two_concurrent_runs_of_one_name_race_to_exactly_one_winner(
    project: Project, rounds: int
) -> None:
    for i in range(rounds):
        name = f"race-{i}"
        cmd = _wait_cmd(project, f"go-{name}")
        procs = [_popen_run(project, name, *cmd) for _ in range(2)]
        outs = [p.communicate(timeout=DEFAULT_TIMEOUT_S) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 1], outs
        loser = outs[[p.returncode for p in procs].index(1)]
        line = _one_sentence(loser[1])
        assert "is held by run" in line and "outlive cancel" in line
        winner = outs[[p.returncode for p in procs].index(0)][0].strip()
        rows = [r for r in _status_all(project) if r["name"] == name]
        assert [r["run_id"] for r in rows] == [winner], rows
        assert rows[0]["state"] in ("pending", "running")
        (project.dir / f"go-{name}").touch()
        project.wait_ended(winner)


def test_kill_9_of_run_at_any_moment_leaves_no_run_the_registry_does_not_know(
    project: Project,
) -> None:
    rng = random.Random(12)
    cmd = _wait_cmd(project, "go-all")
    for i in range(8):
        proc = _popen_run(project, f"k{i}", *cmd)
        time.sleep(rng.uniform(0.0, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=DEFAULT_TIMEOUT_S)
    # The agents the killed clients started finish their launches by themselves.
    wait_for(lambda: not _launch_agents(project), "the orphaned launch agents to finish")
    runs = _status_all(project)
    states = {r["state"] for r in runs}
    assert states <= {"pending", "running", "succeeded", "failed", "vanished", "cancelled"}
    known = {r["run_id"] for r in runs}
    live = _live_run_dirs(project)
    assert set(live) <= known, (sorted(live), sorted(known))
    # every run dir on the box is known, live or not
    assert {d.name for d in project.run_dirs()} <= known
    (project.dir / "go-all").touch()
    for run_id in live:
        project.wait_ended(run_id)


def test_status_adopts_a_run_that_reached_the_box_without_being_recorded(
    project: Project,
) -> None:
    run_id, go = project.start_waiting("lost")
    project.wait_running(run_id)
    _sql(project, "DELETE FROM runs WHERE run_id = ?", run_id)
    project.start_waiting("other")  # the target has a known run, so a look asks the box
    rows = {r["run_id"]: r for r in _status_all(project)}
    assert rows[run_id]["name"] == "lost" and rows[run_id]["state"] == "running"
    assert project.status(run_id)["state"] == "running"  # recorded: found by id now
    go.touch()
    (project.dir / "go-other").touch()
    project.wait_ended(run_id)


def test_a_journaled_launch_that_never_reached_the_box_shows_pending_then_is_forgotten(
    project: Project,
) -> None:
    from outlive.lifecycle import runs as lifecycle
    from outlive.session import Session
    from outlive.store import RunRecord

    session = Session.open(project.dir)
    workdir = session.target("local").placement.workdir
    session.store.journal(
        RunRecord(
            run_id="20260101-000000-abcdef",
            name="ghost",
            target="local",
            command=["true"],
            run_dir=lifecycle.box_run_dir(workdir, "20260101-000000-abcdef"),
            ckpt_dir="",
            created_at=time.time(),
        )
    )
    rows = _status_all(project)
    assert [(r["name"], r["state"]) for r in rows] == [("ghost", "pending")]
    ls = json.loads(project.cli("ls", "--json").stdout)["runs"]
    assert [r["state"] for r in ls] == ["pending"]
    _sql(project, "UPDATE runs SET updated_at = updated_at - 3600")
    assert _status_all(project) == []


def _registry(project: Project) -> Path:
    project.cli("ls")  # creates it
    return project.dir / ".outlive" / "registry.db"


def test_a_corrupt_registry_is_one_sentence_and_launches_nothing(project: Project) -> None:
    db = _registry(project)
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    db.write_bytes(os.urandom(4096))
    done = project.cli("run", "--name", "c", "--", sys.executable, "-c", "pass", rc=None)
    assert done.returncode in (1, 2)
    line = _one_sentence(done.stderr)
    assert "registry" in line and "nothing was launched" in line
    assert project.run_dirs() == []
    done = project.cli("status", "--json", rc=None)
    assert done.returncode in (1, 2) and "registry" in _one_sentence(done.stderr)


def test_a_read_only_registry_is_one_sentence_and_launches_nothing(project: Project) -> None:
    db = _registry(project)
    project.cli("status")  # leaves no -wal behind
    locked = subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False)
    if locked.returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("chattr +i is not available here (root ignores file modes)")
        db.chmod(0o444)
    try:
        done = project.cli("run", "--name", "ro", "--", sys.executable, "-c", "pass", rc=None)
        assert done.returncode in (1, 2)
        line = _one_sentence(done.stderr)
        assert "registry" in line and "nothing was launched" in line
        assert project.run_dirs() == []
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True, check=False)
        db.chmod(0o644)


@pytest.mark.parametrize("warm", [False, True], ids=["first-launch", "agent-installed"])
def test_a_full_local_disk_is_one_sentence_and_launches_nothing(
    make_project: Callable[..., Project], tmp_path: Path, warm: bool
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        project = make_project("disk/proj")
        _registry(project)
        if warm:  # the local agent's bundle is in place: the registry write is what fails
            project.wait_ended(project.run(sys.executable, "-c", "pass", name="before"))
        filler = disk / "filler"
        for i, bs in enumerate(("64k", "1k", "64")):  # to the last byte
            subprocess.run(
                ["dd", "if=/dev/zero", f"of={filler}{i}", f"bs={bs}"],
                capture_output=True,
                check=False,
            )
        done = project.cli("run", "--name", "full", "--", sys.executable, "-c", "pass", rc=None)
        assert done.returncode in (1, 2)
        line = _one_sentence(done.stderr)
        assert "nothing was launched" in line and "free space" in line, line
        assert _live_run_dirs(project) == {}
    finally:
        project.kill_leftovers() if "project" in locals() else None
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def test_a_cancel_whose_supervisor_is_gone_says_what_became_of_the_run(
    project: Project,
) -> None:
    run_id, _go = project.start_waiting("orphan")
    project.wait_running(run_id)
    launch = box_records.read_json(str(project.dir / ".outlive" / "runs" / run_id / "launch.json"))
    assert isinstance(launch, dict)
    os.kill(int(launch["supervisor_pid"]), signal.SIGKILL)
    os.killpg(int(launch["pgid"]), signal.SIGKILL)
    wait_for(
        lambda: not box_procfs.is_alive(launch["pid"], launch.get("start_ticks")), "the job gone"
    )
    done = project.cli("cancel", run_id)
    text = done.stdout + done.stderr
    assert "neither the supervisor nor the job is alive" in text
    assert ("vanished" in text or "cancelled" in text) and "cause" in text, text
    reply = json.loads(project.cli("cancel", "--json", run_id).stdout)
    assert reply["signalled"] is None and reply["state"] in ("vanished", "cancelled")
    assert reply["diagnosis"]["cause"] in ("killed", "oom", "unknown", "hangup")
