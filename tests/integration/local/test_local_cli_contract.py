"""The CLI contract (DESIGN.md): one JSON document per ``--json`` command, the run id as the last
line of ``run``, exact log tails and follows, ``watch`` exit codes, and configuration errors as one
sentence with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from local_helpers import DEFAULT_TIMEOUT_S, OUTLIVE, read_json_file, wait_for

COUNT_JOB = """\
import sys, time
for i in range(int(sys.argv[1])):
    print(f"line {i}")
    if i % 10 == 9:
        print()  # blank lines are log content too
    time.sleep(0.01)
"""


def test_every_json_command_prints_exactly_one_json_document(project):
    done = project.cli("run", "--json", "--name", "sleeper", "--", "sleep", "600")
    run = json.loads(done.stdout)
    assert set(run) >= {"run_id", "name", "target"} and run["name"] == "sleeper"
    run_id = run["run_id"]

    status = json.loads(project.cli("status", "--json").stdout)
    (st,) = status["runs"]
    for key in (
        "run_id",
        "name",
        "target",
        "state",
        "exit_code",
        "signal",
        "pid",
        "supervisor_pid",
        "started_at",
        "ended_at",
        "heartbeat_age_s",
        "progress",
        "diagnosis",
    ):
        assert key in st, key
    assert (st["run_id"], st["state"], st["target"]) == (run_id, "running", "local")

    listed = json.loads(project.cli("ls", "--json").stdout)
    assert [r["run_id"] for r in listed["runs"]] == [run_id]

    targets = json.loads(project.cli("targets", "--json").stdout)
    assert [t["name"] for t in targets["targets"]] == ["local"]

    cancelled = json.loads(project.cli("cancel", "--json", run_id).stdout)
    assert cancelled["signalled"] == "supervisor" and cancelled["run_id"] == run_id
    st = project.wait_ended(run_id)
    assert (st["state"], st["signal"]) == ("cancelled", 15)


def test_run_without_json_prints_the_run_id_as_the_last_stdout_line(project):
    done = project.cli("run", "--name", "plain", "--", "true")
    run_id = done.stdout.splitlines()[-1]
    assert project.wait_ended(run_id)["name"] == "plain"
    assert "plain" in done.stderr  # the human note goes to stderr
    spec = read_json_file(project.dir / ".outlive" / "runs" / run_id / "run.json")
    assert spec["command"] == ["true"] and spec["name"] == "plain"
    assert (spec["target"], spec["profile"]) == ("local", "local")


def test_logs_n_prints_exactly_the_last_n_lines(project):
    project.write("count.py", COUNT_JOB)
    run_id = project.python("count.py", "20", name="count")  # ends with a blank line
    assert project.wait_ended(run_id)["state"] == "succeeded"
    log = (project.dir / ".outlive" / "runs" / run_id / "stdout.log").read_text()
    lines = log.splitlines(keepends=True)
    assert project.cli("logs", "-n", "4", run_id).stdout == "".join(lines[-4:])
    assert lines[-1] == "\n"
    assert project.cli("logs", "-n", "1", run_id).stdout == "\n"
    assert project.cli("logs", "-n", "1000", run_id).stdout == log


def test_logs_follow_ends_with_the_run_and_prints_the_log_exactly_once(project):
    project.write("count.py", COUNT_JOB)
    run_id = project.python("count.py", "120", name="follow")
    done = project.cli("logs", "-f", "-n", "100000", run_id)
    st = project.status(run_id)
    assert st["state"] == "succeeded", "logs -f returned before the run ended"
    log = (project.dir / ".outlive" / "runs" / run_id / "stdout.log").read_text()
    assert done.stdout == log
    assert log.count("line 119\n") == 1


def test_watch_exits_0_for_a_succeeded_run_and_1_for_a_failed_one(project):
    ok = project.run(sys.executable, "-c", "pass", name="ok")
    bad = project.run(sys.executable, "-c", "raise SystemExit(4)", name="bad")
    assert project.cli("watch", "--interval-s", "0.1", ok, rc=None).returncode == 0
    assert project.cli("watch", "--interval-s", "0.1", bad, rc=None).returncode == 1
    assert project.status(bad)["exit_code"] == 4


def test_an_unknown_target_is_one_sentence_naming_it_and_the_configured_ones(make_project):
    project = make_project(toml='[targets.gpu-box]\nhost = "10.0.0.5"\nworkdir = "/w"\n')
    done = project.cli("run", "-t", "nope", "--", "true", rc=2)
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "'nope'" in err and "gpu-box" in err and "local" in err
    assert done.stdout == ""
    assert not (project.dir / ".outlive" / "runs").exists()


def test_a_bad_config_key_is_exit_2_naming_the_file_table_key_and_fix(make_project):
    project = make_project(toml='[targets.box]\nhots = "10.0.0.5"\nworkdir = "/w"\n')
    for args in (("targets", "--json"), ("run", "--", "true"), ("status", "--json")):
        done = project.cli(*args, rc=2)
        err = done.stderr.strip()
        assert len(err.splitlines()) == 1 and done.stdout == ""
        assert str(project.dir / "outlive.toml") in err
        assert "[targets.box]" in err and "'hots'" in err and "'host'" in err


def test_targets_json_lists_the_configured_targets_and_the_config_file(make_project):
    toml = '[targets.box]\nhost = "10.0.0.5"\nworkdir = "/w"\n'
    project = make_project(toml=toml)
    targets = json.loads(project.cli("targets", "--json").stdout)
    assert targets["config"] == str(project.dir / "outlive.toml")
    by_name = {t["name"]: t for t in targets["targets"]}
    assert set(by_name) == {"local", "box"}
    assert by_name["box"]["host"] == "10.0.0.5" and by_name["box"]["workdir"] == "/w"
    assert by_name["local"]["workdir"] == str(project.dir)


def test_logs_follow_of_a_run_that_vanishes_ends_with_the_reason_and_exit_1(project):
    """A run killed without an exit record (like a reboot) ends a follow within seconds (U3)."""
    run_id, _go = project.start_waiting("vanisher")
    st = project.wait_running(run_id)
    follower = subprocess.Popen(
        [OUTLIVE, "logs", "-f", run_id], cwd=project.dir, env=project.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    os.killpg(st["pid"], signal.SIGKILL)
    _out, err = follower.communicate(timeout=DEFAULT_TIMEOUT_S)  # once hung until interrupted
    assert follower.returncode == 1
    assert "ended vanished (killed:" in err and err.count("\n") == 1 and "Traceback" not in err


def test_logs_follow_name_goes_on_to_the_relaunched_run_of_the_same_name(project):
    first = project.run(sys.executable, "-c", "print('first attempt')", name="again")
    project.wait_ended(first)
    follower = subprocess.Popen(
        [OUTLIVE, "logs", "-f", "--follow-name", "-n", "100", first], cwd=project.dir,
        env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "first attempt" in _peek(follower), "the follower to print the first run")
        second = project.run(sys.executable, "-c", "print('second attempt')", name="again")
        project.wait_ended(second)
        wait_for(lambda: "second attempt" in _peek(follower), "the follower to go on to the second")
    finally:
        follower.kill()
        out, err = follower.communicate(timeout=DEFAULT_TIMEOUT_S)
    seen = _PEEKED.get(follower.pid, "") + out
    assert "first attempt" in seen and "second attempt" in seen
    assert second in err  # it said which run it went on to


_PEEKED: dict[int, str] = {}


def _peek(proc: subprocess.Popen[str]) -> str:
    """What a running process has printed so far (non-blocking)."""
    import select

    assert proc.stdout is not None
    buf = _PEEKED.get(proc.pid, "")
    while select.select([proc.stdout], [], [], 0)[0]:
        chunk = os.read(proc.stdout.fileno(), 65536).decode()
        if not chunk:
            break
        buf += chunk
    _PEEKED[proc.pid] = buf
    return buf
