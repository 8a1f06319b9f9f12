"""`outlive run` through the warm local daemon, on a real SSH box: the same answers and exit codes
as the CLI's own launch, a launch is never made twice (a daemon that dies after acknowledging is
never followed by a second launch), a target with secrets is launched by the CLI itself, and the
job outlives the daemon, its channel and the SSH master."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_ssh_runs import (  # noqa: F401 (project: a fixture)
    OUTLIVE,
    cli,
    project,
    served_by_daemon,
    step_of,
    train_cmd,
    wait_for,
)

from outlive.session import Session
from outlive.testing import Box, wait_until
from outlive.transport.ssh import control_dir

_NO_DAEMON = dict(os.environ, OUTLIVE_NO_DAEMON="1")


def _run(proj: Path, *args: str, direct: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, "run", *args],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=120,
        env=_NO_DAEMON if direct else None,
    )


def _daemons(proj: Path) -> list[dict[str, Any]]:
    return list(json.loads(cli(proj, "daemon", "status", "--json").stdout)["daemons"])


def _warm(proj: Path) -> None:
    """A look starts the daemon (as a user's first look does); wait until it answers."""
    cli(proj, "status", "--json", check=False)
    wait_until(lambda: _daemons(proj), "the daemon to start")


def _runs(proj: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [OUTLIVE, "status", "--json"], cwd=proj, capture_output=True, text=True, env=_NO_DAEMON
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout)["runs"])


def test_a_launch_through_the_daemon_answers_as_the_cli_does(project: Path) -> None:  # noqa: F811
    _warm(project)
    before = served_by_daemon(project)
    served = _run(project, "-t", "box", "--json", "--name", "warm", "--", "sleep", "30")
    assert served.returncode == 0, served.stderr
    assert served_by_daemon(project) == before + 1  # the daemon launched it
    direct = _run(
        project, "-t", "box", "--json", "--name", "cold", "--", "sleep", "30", direct=True
    )
    assert direct.returncode == 0, direct.stderr
    assert served_by_daemon(project) == before + 1  # OUTLIVE_NO_DAEMON: the CLI launched it
    docs = [json.loads(p.stdout) for p in (served, direct)]
    assert [sorted(d) for d in docs] == [["name", "run_id", "target", "warnings"]] * 2
    assert [(d["name"], d["target"], d["warnings"]) for d in docs] == [
        ("warm", "box", []),
        ("cold", "box", []),
    ]
    assert served.stderr == direct.stderr == ""
    plain = [
        _run(project, "-t", "box", "--name", f"plain-{d}", "--", "sleep", "30", direct=d)
        for d in (False, True)
    ]
    assert served_by_daemon(project) == before + 2
    shape = r"launched 'plain-(True|False)' on box \(pid \d+\); checkpoints in .+\n"
    for p in plain:
        assert p.returncode == 0 and re.fullmatch(shape, p.stderr), p.stderr
        assert re.fullmatch(r"[0-9a-z-]+\n", p.stdout), p.stdout
    rows = {r["run_id"]: r for r in _runs(project)}
    launched = [d["run_id"] for d in docs] + [p.stdout.strip() for p in plain]
    assert all(rows[r]["state"] in ("pending", "running") for r in launched), rows
    for run_id in launched:
        cli(project, "cancel", run_id)


def test_bad_input_gets_the_same_sentence_and_exit_code_on_both_paths(
    project: Path,  # noqa: F811
) -> None:
    _warm(project)
    held = _run(project, "-t", "box", "--json", "--name", "busy", "--", "sleep", "60")
    assert held.returncode == 0, held.stderr
    cases = [
        ("-t", "nope", "--", "true"),
        ("-t", "box", "--name", "a b/$(x)", "--", "true"),
        ("-t", "box", "--name", "busy", "--", "true"),
        ("-t", "box", "--json", "--name", "busy", "--", "true"),
        ("-t", "box", "--name", "x"),
    ]
    for args in cases:
        served, direct = _run(project, *args), _run(project, *args, direct=True)
        assert served.returncode == direct.returncode != 0, (args, served, direct)
        assert served.stderr == direct.stderr, args
        assert served.stdout == direct.stdout == "", args
        assert served.stderr.startswith("outlive: ") and served.stderr.count("\n") == 1, args
    busy = _run(project, "-t", "box", "--name", "busy", "--", "true")
    assert "held by run" in busy.stderr
    assert [r["name"] for r in _runs(project)] == ["busy"]  # nothing else was launched
    cli(project, "cancel", json.loads(held.stdout)["run_id"])


def _kill_daemon(proj: Path) -> None:
    for d in _daemons(proj):
        os.kill(int(d["pid"]), signal.SIGKILL)


def test_a_daemon_killed_mid_launch_is_never_followed_by_a_second_launch(
    project: Path,  # noqa: F811
    box: Box,
) -> None:
    _warm(project)
    cli(project, "push", "box")  # the launch itself is then one request on the open channel
    runs_dir = Path(Session.open(project).target("box").placement.workdir) / ".outlive" / "runs"
    proc = subprocess.Popen(
        [OUTLIVE, "run", "-t", "box", "--name", "once", "--", "sleep", "60"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        lambda: proc.poll() is not None or (runs_dir.is_dir() and any(runs_dir.iterdir())),
        "the launch to reach the box",
        interval_s=0.002,
    )
    _kill_daemon(project)
    _out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:  # the reply died with the daemon: one sentence, no relaunch
        assert proc.returncode == 1
        assert "may or may not have started" in err and "`outlive status` will tell" in err, err
        assert err.count("\n") == 1, err
    rows = [r for r in _runs(project) if r["name"] == "once"]
    assert len(rows) == 1, rows  # exactly one run, whatever the client saw
    assert len(list(runs_dir.iterdir())) == 1
    cli(project, "cancel", rows[0]["run_id"])


def _fake_daemon(path: str, reply: bytes | None, seen: list[bytes]) -> threading.Thread:
    """Listen on the daemon's socket: read one request, acknowledge it, then (after the client's
    go) answer ``reply``; None: close without a word, as a daemon SIGKILLed after its
    acknowledgement does."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                buf = b""
                while not buf.endswith(b"\n"):
                    buf += conn.recv(1 << 16)
                seen.append(buf)
                conn.sendall(b".")
                if reply is not None:
                    assert conn.recv(1) == b"g"  # the client's go, as the real daemon awaits
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _socket_of(proj: Path) -> str:
    """The daemon socket this project's CLI uses (its daemon started, then killed)."""
    _warm(proj)
    path = str(_daemons(proj)[0]["socket"])
    _kill_daemon(proj)
    wait_until(lambda: not _daemons(proj), "the daemon to be gone")
    Path(path).unlink(missing_ok=True)
    return path


def test_an_acknowledged_request_is_never_launched_again_by_the_client(
    project: Path,  # noqa: F811
) -> None:
    seen: list[bytes] = []
    thread = _fake_daemon(_socket_of(project), None, seen)
    out = _run(project, "-t", "box", "--name", "lost", "--", "sleep", "30")
    thread.join(timeout=10)
    assert seen and b"'op': 'run'" in seen[0]
    assert out.returncode == 1
    assert "the launch may or may not have started" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1
    assert [r for r in _runs(project) if r["name"] == "lost"] == []  # the client sent nothing


@pytest.mark.parametrize("secrets", [True, False])
def test_a_fallback_answer_is_launched_by_the_client_and_carries_no_secret(
    project: Path,  # noqa: F811
    secrets: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = f"s3cr3t-{os.getpid()}-{time.time_ns()}"
    monkeypatch.setenv("MY_TOKEN", value)  # a secret in the client's environment
    seen: list[bytes] = []
    thread = _fake_daemon(_socket_of(project), b"-1 0 0\n", seen)
    out = _run(project, "-t", "box", "--json", "--name", "fell", "--", "sleep", "30")
    thread.join(timeout=10)
    assert out.returncode == 0, out.stderr
    assert seen and value.encode() not in seen[0]
    assert [r["name"] for r in _runs(project)] == ["fell"]  # launched once, by the client
    cli(project, "cancel", json.loads(out.stdout)["run_id"])


def test_a_target_with_secrets_is_launched_by_the_cli_itself(project: Path) -> None:  # noqa: F811
    toml = project / "outlive.toml"
    toml.write_text(toml.read_text() + 'secrets = ["MY_TOKEN"]\n')
    value = f"tok-{os.getpid()}-{time.time_ns()}"
    pushed = subprocess.run(
        [OUTLIVE, "secret", "push", "box", "MY_TOKEN", "--json"],
        cwd=project,
        input=value,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pushed.returncode == 0, pushed.stderr
    _warm(project)
    before = served_by_daemon(project)
    out = _run(project, "-t", "box", "--json", "--", "sh", "-c", 'test -n "$MY_TOKEN"')
    assert out.returncode == 0, out.stderr
    assert served_by_daemon(project) == before  # answered FALLBACK: the CLI launched it
    run_id = json.loads(out.stdout)["run_id"]
    st = wait_for(project, run_id, lambda s: s["state"] not in ("pending", "running"), "the end")
    assert st["state"] == "succeeded"


def _masters() -> list[int]:
    """The pids of this machine's SSH masters for outlive's control sockets."""
    needle = f"{control_dir()}/".encode()
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"ssh: " + needle) and b"[mux]" in cmd:
            found.append(int(pid))
    return found


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def test_a_job_launched_by_the_daemon_outlives_the_daemon_its_channel_and_the_master(
    project: Path,  # noqa: F811
    box: Box,
) -> None:
    _warm(project)
    before = served_by_daemon(project)
    out = _run(project, "-t", "box", "--json", "--name", "orphan", "--", *train_cmd(4000, 0.05))
    assert out.returncode == 0, out.stderr
    assert served_by_daemon(project) == before + 1
    run_id = json.loads(out.stdout)["run_id"]
    procs = box.procs()
    forked = [p for p, cmd in procs.items() if " serve" in cmd]  # the supervisor shares its argv
    serving = [p for p in forked if _parent(p) not in forked]
    assert serving, procs  # the daemon's channel on the box
    _kill_daemon(project)
    for pid in _masters():
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(p in box.procs() for p in serving), "the channel to end")
    st = wait_for(project, run_id, lambda s: step_of(s) > 0, "a look at the run")
    at = step_of(st)
    st = wait_for(project, run_id, lambda s: step_of(s) > at + 2, "the job to go on")
    assert st["state"] == "running", st
    cli(project, "cancel", run_id)


def test_a_request_the_client_took_back_before_the_ack_is_never_launched(
    project: Path,  # noqa: F811
) -> None:
    _warm(project)
    path = str(_daemons(project)[0]["socket"])
    argv = ["run", "-t", "box", "--name", "phantom", "--", "sleep", "30"]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:  # a client that gave up: it read the "." too late and never said go
        conn.connect(path)
        conn.sendall(ascii({"op": "run", "argv": argv, "cwd": str(project)}).encode() + b"\n")
        assert conn.recv(1) == b"."
    before = served_by_daemon(project)
    later = _run(project, "-t", "box", "--json", "--name", "later", "--", "sleep", "30")
    assert later.returncode == 0, later.stderr
    assert served_by_daemon(project) == before + 1  # only the launch that said go
    assert [r["name"] for r in _runs(project)] == ["later"]
    cli(project, "cancel", json.loads(later.stdout)["run_id"])
