"""The daemon under an unlucky setting: ``OUTLIVE_DAEMON_DIR`` given as a relative path (the
daemon runs in ``/``, so each one failed to bind and every look stayed cold and spawned another
that failed)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_helpers import Project, wait_for


def _daemons(p: Project) -> list[dict[str, Any]]:
    return list(json.loads(p.cli("daemon", "status", "--json").stdout)["daemons"])


def test_a_relative_socket_directory_is_the_clients_and_serves_looks(
    make_project: Callable[..., Project],
) -> None:
    p = make_project()
    p.env["OUTLIVE_DAEMON_DIR"] = "rel-sockets"  # relative to the project, where outlive runs
    try:
        run_id, go = p.start_waiting("w")
        p.cli("status", "--json")  # starts the daemon
        found = wait_for(lambda: _daemons(p), "the daemon to start")
        assert os.path.dirname(found[0]["socket"]) == str(p.dir / "rel-sockets")
        before = found[0]["served"]
        assert p.status_cli(run_id)["state"] == "running"
        assert _daemons(p)[0]["served"] == before + 1
        go.touch()
    finally:
        p.cli("daemon", "stop", "--json", rc=None)


EVIL = """\
import os, socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
os.chmod(path, 0o777)
srv.listen(8)
body = b'{"runs": ["FAKE"]}'
while True:
    conn, _ = srv.accept()
    conn.recv(65536)
    conn.sendall(b"." + b"0 %d 0\\n" % len(body) + body)
    conn.close()
"""


def test_a_socket_of_another_user_at_the_daemons_path_is_never_answered_from(
    make_project: Callable[..., Project],
) -> None:
    """Another uid's listener reached through the daemon's socket path (a symlink planted
    there, or a path swapped after the directory check): the client checks the peer's uid."""
    import shutil
    import subprocess
    import tempfile

    from local_helpers import OUTLIVE

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("a listener of another uid needs root and setpriv (CI runs as root)")
    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    theirs = tempfile.mkdtemp(prefix="evil-", dir="/tmp")
    os.chmod(theirs, 0o777)
    evil_sock = os.path.join(theirs, "evil.sock")
    with open(OUTLIVE) as f:  # the CLI's interpreter: part of the daemon's key
        python = f.readline()[2:].strip()
    where = subprocess.run(
        [python, "-c", "from outlive.daemon.client import socket_path; print(socket_path())"],
        env=p.env,
        cwd=p.dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"]
    with subprocess.Popen([setpriv, *nobody, "/usr/bin/python3", "-c", EVIL, evil_sock]) as evil:
        try:
            wait_for(lambda: os.path.exists(evil_sock), "the other user's listener")
            os.symlink(evil_sock, where)
            done = p.cli("status", "--json")
            assert "FAKE" not in done.stdout
            assert json.loads(done.stdout) == {"runs": []}
        finally:
            evil.kill()
            p.cli("daemon", "stop", "--json", rc=None)
            shutil.rmtree(own, ignore_errors=True)
            shutil.rmtree(theirs, ignore_errors=True)


def test_a_daemon_killed_outright_leaves_a_socket_the_next_daemon_replaces(
    make_project: Callable[..., Project],
) -> None:
    """kill -9 of the daemon: its socket file stays behind, nobody listens; the next look
    answers by itself, and a fresh daemon takes the same path and serves the one after."""
    import shutil
    import signal
    import tempfile

    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    try:
        run_id, go = p.start_waiting("w")
        p.cli("status", "--json")
        first = wait_for(lambda: _daemons(p), "the daemon to start")[0]
        os.kill(int(first["pid"]), signal.SIGKILL)
        wait_for(lambda: not _daemons(p), "the killed daemon to be gone")
        assert os.path.exists(first["socket"])  # left behind, refusing connections
        assert p.status_cli(run_id)["state"] == "running"  # looked directly
        again = wait_for(lambda: _daemons(p), "a fresh daemon")[0]
        assert again["pid"] != first["pid"] and again["socket"] == first["socket"]
        served = again["served"]
        assert p.status_cli(run_id)["state"] == "running"
        assert _daemons(p)[0]["served"] == served + 1
        go.touch()
        p.wait_ended(run_id)
    finally:
        p.cli("daemon", "stop", "--json", rc=None)
        shutil.rmtree(own, ignore_errors=True)


def test_daemon_status_says_why_no_daemon_is_ever_used(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    """An unsafe socket directory (or the daemon turned off) makes every look cold, silently:
    ``daemon status`` said only "no daemon running; the next look starts one"."""
    p = make_project()
    shared = tmp_path / "shared-sockets"
    shared.mkdir()
    shared.chmod(0o777)
    p.env["OUTLIVE_DAEMON_DIR"] = str(shared)
    done = p.cli("daemon", "status", "--json")
    assert json.loads(done.stdout) == {"daemons": []}
    assert str(shared) in done.stderr and "not safe" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    p.env["OUTLIVE_NO_DAEMON"] = "1"
    assert "OUTLIVE_NO_DAEMON is set" in p.cli("daemon", "status").stderr
