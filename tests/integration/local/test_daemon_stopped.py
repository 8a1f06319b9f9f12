"""Issue 12 item 11a: a daemon that is stopped (SIGSTOP) or hung accepts connections but never
answers. A look gives up on it after SILENCE_S (not its reply timeout) and looks by itself;
``daemon status`` lists it as not answering with its pid; ``daemon stop`` ends it (TERM, then
KILL) and removes its socket. A process that is not our daemon is never signalled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from local_helpers import Project, wait_for

from outlive.daemon import client as daemon_client


@pytest.fixture
def own_dir(make_project: Callable[..., Project]) -> Iterator[tuple[Project, str]]:
    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")  # this test counts daemons: none of other tests here
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    yield p, own
    p.cli("daemon", "stop", rc=None)
    shutil.rmtree(own, ignore_errors=True)


def _daemons(p: Project) -> list[dict[str, Any]]:
    return list(json.loads(p.cli("daemon", "status", "--json").stdout)["daemons"])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def test_a_stopped_daemon_is_gone_around_listed_and_stopped(own_dir: tuple[Project, str]) -> None:
    p, own = own_dir
    run_id, go = p.start_waiting("held")
    p.cli("status", "--json", rc=None)  # starts the daemon
    wait_for(lambda: _daemons(p), "the daemon to start")
    [info] = _daemons(p)
    assert info["state"] == "answering"
    pid = int(info["pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        doc = json.loads(p.cli("status", "--json").stdout)
        took = time.monotonic() - started
        print(f"a look with a stopped daemon took {took:.2f} s")
        assert [(r["run_id"], r["state"]) for r in doc["runs"]] == [(run_id, "running")]
        # gave up on the silent daemon (SILENCE_S) rather than waiting out its reply timeout
        assert took < daemon_client.REPLY_TIMEOUT_S, f"the look waited {took:.1f} s on it"

        listed = _daemons(p)
        assert [(d["pid"], d["state"]) for d in listed] == [(pid, "not answering")], listed
        human = p.cli("daemon", "status").stdout
        assert f"pid {pid}" in human and "NOT ANSWERING" in human

        stopped = json.loads(p.cli("daemon", "stop", "--json").stdout)["stopped"]
        assert [d["pid"] for d in stopped] == [pid]
        wait_for(lambda: not _alive(pid), "the stopped daemon to end")
        assert _daemons(p) == []
        assert not [n for n in os.listdir(own) if n.endswith(".sock")]
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    go.touch()
    p.wait_ended(run_id)
    # The next look starts a fresh daemon, which answers.
    p.cli("status", "--json", rc=None)
    wait_for(lambda: [d for d in _daemons(p) if d["state"] == "answering"], "a new daemon")


def test_a_silent_listener_is_given_up_on_within_seconds(tmp_path: Path) -> None:
    """Something that accepts and never answers (a hung daemon): the exchange fails in about
    SILENCE_S, not after REPLY_TIMEOUT_S."""
    path = str(tmp_path / "d-silent.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(OSError):
        daemon_client.exchange(path, {"op": "status"})
    took = time.monotonic() - started
    print(f"gave up after {took:.2f} s")
    assert took < daemon_client.REPLY_TIMEOUT_S  # on the silence, not the reply timeout
    for conn in held:
        conn.close()
    listener.close()


def test_a_process_that_is_not_our_daemon_is_never_signalled(tmp_path: Path) -> None:
    path = str(tmp_path / "d-x.sock")
    assert not daemon_client._is_our_daemon(os.getpid(), path)  # pytest: not a daemon
    assert not daemon_client._is_our_daemon(1, path)
    assert daemon_client._silent_daemon_pid(path) is None  # no lock held
