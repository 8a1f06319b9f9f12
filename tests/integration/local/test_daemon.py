"""The local daemon through the real ``outlive`` console script: the first look starts it, the
next looks are served by it with the same answers (JSON, table, exit codes, one-sentence errors)
as the CLI's own, and anything doubtful (an unsafe socket directory, another environment, the
daemon turned off) makes the CLI look by itself."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_helpers import Project, wait_for

from outlive.daemon import client as daemon_client
from outlive.daemon.watch import SourceWatch


def _daemons(p: Project) -> list[dict[str, Any]]:
    return list(json.loads(p.cli("daemon", "status", "--json").stdout)["daemons"])


def _served(p: Project) -> int:
    return sum(int(d["served"]) for d in _daemons(p))


def _warm(p: Project) -> None:
    """Look once (which starts the daemon) and wait until the daemon answers."""
    p.cli("status", "--json", rc=None)
    wait_for(lambda: _daemons(p), "the daemon to start")


def _comparable(doc: dict[str, Any]) -> list[dict[str, Any]]:
    volatile = ("heartbeat_age_s",)
    return [{k: v for k, v in r.items() if k not in volatile} for r in doc["runs"]]


@pytest.fixture
def proj(make_project: Callable[..., Project]) -> Project:
    return make_project(dirname='it\'s a "proj" $(x); ü')  # hostile cwd travels as data


def test_looks_after_the_first_are_served_by_the_daemon_with_the_same_answers(
    proj: Project,
) -> None:
    ok_id, go_ok = proj.start_waiting("fine", exit_code=0)
    bad_id, go_bad = proj.start_waiting("broken", exit_code=3)
    go_ok.touch()
    go_bad.touch()
    proj.wait(ok_id, lambda s: s["state"] == "succeeded", "the good run to end")
    proj.wait(bad_id, lambda s: s["state"] == "failed", "the bad run to end")
    _warm(proj)
    before = _served(proj)

    served = json.loads(proj.cli("status", "--json").stdout)
    named_failed = proj.cli("status", "--json", bad_id, rc=1)  # exit 1: a named run failed
    table = proj.cli("status").stdout
    assert _served(proj) == before + 3

    proj.env["OUTLIVE_NO_DAEMON"] = "1"
    direct = json.loads(proj.cli("status", "--json").stdout)
    direct_table = proj.cli("status").stdout
    assert _comparable(served) == _comparable(direct)
    assert json.loads(named_failed.stdout)["runs"][0]["exit_code"] == 3
    assert table.splitlines()[0] == direct_table.splitlines()[0]
    assert "fine" in table and "broken" in table and "failed" in table


def test_a_served_look_loads_no_module_it_does_not_need(proj: Project) -> None:
    """The client of a warm look imports only what the exchange needs: not outlive's errors,
    nor json, socket, zlib, enum, re or typing (each a measurable part of a ~10 ms floor)."""
    import sys

    run_id, go = proj.start_waiting("w")
    _warm(proj)
    before = _served(proj)
    traced = proj.cli("status", "--json", argv_prefix=(sys.executable, "-X", "importtime"))
    assert _served(proj) == before + 1
    assert json.loads(traced.stdout)["runs"][0]["run_id"] == run_id
    loaded = {
        line.rsplit("|", 1)[1].strip()
        for line in traced.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "outlive.daemon.client" in loaded, traced.stderr  # the trace is of the served look
    heavy = {"outlive.errors", "json", "socket", "zlib", "enum", "re", "typing"} & loaded
    assert not heavy, f"a served look imported {sorted(heavy)}"
    go.touch()


def test_a_config_error_is_the_same_one_sentence_through_the_daemon(proj: Project) -> None:
    _warm(proj)
    proj.write("outlive.toml", "[targets.box]\nhots = 'typo'\n")
    served = proj.cli("status", "--json", rc=2)
    proj.env["OUTLIVE_NO_DAEMON"] = "1"
    direct = proj.cli("status", "--json", rc=2)
    assert served.stderr == direct.stderr
    assert served.stderr.startswith("outlive: ") and served.stderr.count("\n") == 1


def test_an_unsafe_socket_directory_is_never_used(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    p = make_project()
    shared = tmp_path / "shared-sockets"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a socket here and answer in the daemon's place
    p.env["OUTLIVE_DAEMON_DIR"] = str(shared)
    run_id, go = p.start_waiting("w")
    for _ in range(3):
        assert p.status_cli(run_id)["state"] == "running"
    go.touch()
    assert not list(shared.iterdir())  # no daemon was started there, none was asked
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777


def test_the_daemon_is_keyed_by_environment_and_stops_on_request_or_when_idle(
    make_project: Callable[..., Project],
) -> None:
    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")  # this test counts daemons: none of other tests here
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    _warm(p)
    first = {d["pid"] for d in _daemons(p)}
    p.env["OUTLIVE_DAEMON_IDLE_S"] = "1.5"  # another environment: another daemon, short-lived
    p.cli("status", rc=None)
    wait_for(lambda: len(_daemons(p)) == 2, "a second daemon for the other environment")
    wait_for(lambda: len(_daemons(p)) == 1, "the idle daemon to exit by itself")
    assert {d["pid"] for d in _daemons(p)} == first
    stopped = json.loads(p.cli("daemon", "stop", "--json").stdout)["stopped"]
    assert {d["pid"] for d in stopped} == first
    assert _daemons(p) == []
    assert not [n for n in os.listdir(own) if n.endswith(".sock")]
    shutil.rmtree(own)


@pytest.mark.parametrize("kernel", [True, False], ids=["inotify", "stat"])
def test_the_source_watch_sees_edits_and_new_modules_but_not_editor_droppings(
    tmp_path: Path, kernel: bool
) -> None:
    root = tmp_path / "pkg"
    (root / "daemon").mkdir(parents=True)
    (root / "daemon" / "client.py").write_text("x = 1\n")
    (root / "profiles.toml").write_text("")

    def fresh() -> SourceWatch:
        watch = SourceWatch(str(root), use_inotify=kernel)
        assert watch.kernel == kernel  # Linux: the kernel's events, not a silent fallback
        assert not watch.changed()
        return watch

    watch = fresh()
    (root / "daemon" / ".client.py.swp").write_text("vim")  # moves the directory's mtime
    (root / "daemon" / "__pycache__").mkdir()
    (root / "daemon" / "__pycache__" / "client.cpython-311.pyc").write_text("")
    assert not watch.changed()
    os.utime(root / "daemon" / "client.py", ns=(1, 1))  # an in-place edit: only its stat moves
    assert watch.changed()
    watch = fresh()
    (root / "daemon" / "server.py").write_text("")  # a module added
    assert watch.changed()
    watch = fresh()
    (root / "cli").mkdir()  # a package added
    assert watch.changed()
    watch = fresh()
    (root / "profiles.toml").unlink()
    assert watch.changed()
    assert watch.changed()  # for good
    watch = fresh()
    shutil.rmtree(root / "daemon")
    assert watch.changed()


def test_a_daemon_whose_sources_changed_retires_and_the_cli_starts_a_fresh_one(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    """A daemon never answers from code older than the files: after an edit its next request
    gets FALLBACK (the CLI looks itself, the same answer), its socket and lock are free at once,
    and the CLI starts a fresh daemon as it exits."""
    import subprocess
    import sys
    import threading

    from outlive.daemon import server

    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")  # this test counts daemons: none of other tests here
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    p.env["OUTLIVE_NO_DAEMON"] = "1"  # the launch starts no daemon: the test's own is the first
    run_id, go = p.start_waiting("w")
    del p.env["OUTLIVE_NO_DAEMON"]
    key = subprocess.run(
        [sys.executable, "-c", "from outlive.daemon import client; print(client.socket_path())"],
        env=p.env,
        capture_output=True,
        text=True,
        check=True,
    )
    path = key.stdout.strip()
    assert path.startswith(own), path
    # This daemon (in the test's process) watches a tree of its own, which the test edits.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "mod.py").write_text("")
    watch = SourceWatch(str(tree))
    served = threading.Thread(target=server.serve, args=(path, 60.0, watch), daemon=True)
    served.start()
    wait_for(lambda: os.path.exists(path), "the in-process daemon to listen")
    before = _served(p)
    first = json.loads(p.cli("status", "--json").stdout)
    assert _served(p) == before + 1  # answered by the in-process daemon
    assert [r["run_id"] for r in first["runs"]] == [run_id]
    assert served.is_alive()

    (tree / "mod.py").write_text("x = 2\n")
    second = json.loads(p.cli("status", "--json").stdout)  # looked by the CLI itself
    assert [(r["run_id"], r["state"]) for r in second["runs"]] == [(run_id, "running")]
    served.join(timeout=30)
    assert not served.is_alive(), "the retired daemon did not exit"
    fresh = wait_for(_daemons_of(p), "the CLI to start a fresh daemon")
    assert [d["pid"] for d in fresh] != [os.getpid()] and fresh[0]["served"] == 0
    assert json.loads(p.cli("status", "--json").stdout)["runs"][0]["run_id"] == run_id
    assert _served(p) == 1  # the fresh daemon answered it
    go.touch()
    p.cli("daemon", "stop", "--json")
    shutil.rmtree(own)


def _daemons_of(p: Project) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [d for d in _daemons(p) if d["state"] == "answering"]


def test_concurrent_looks_are_all_answered_by_one_daemon(
    make_project: Callable[..., Project],
) -> None:
    import subprocess

    from local_helpers import OUTLIVE

    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")  # this test counts daemons: none of other tests here
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    run_id, go = p.start_waiting("w")
    _warm(p)
    before = _served(p)
    procs = [
        subprocess.Popen(
            [OUTLIVE, "status", "--json"], cwd=p.dir, env=p.env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 6
    assert all(json.loads(o)["runs"][0]["run_id"] == run_id for o in outs)
    assert _served(p) == before + 6
    assert len(_daemons(p)) == 1
    go.touch()
    p.cli("daemon", "stop", "--json")
    shutil.rmtree(own)


def test_the_key_follows_what_a_look_reads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = daemon_client.daemon_key()
    for name, value in (("PWD", "/elsewhere"), ("SSH_TTY", "/dev/pts/9"), ("TERM", "dumb")):
        monkeypatch.setenv(name, value)
        assert daemon_client.daemon_key() == base, f"{name} must not start another daemon"
    for name, value in (
        ("SLURM_CONF", "/other/slurm.conf"),  # another cluster: squeue must not ask the old one
        ("SSH_AUTH_SOCK", "/tmp/other-agent"),
        ("OUTLIVE_DAEMON_IDLE_S", "5"),
        ("PATH", "/opt/other/bin"),
    ):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert daemon_client.daemon_key() != base, f"{name} must start another daemon"


def test_a_look_served_by_the_daemon_honours_the_clients_columns(proj: Project) -> None:
    """COLUMNS narrows the daemon's table as it does the CLI's own; run ids are never cut."""
    run_id, go = proj.start_waiting("a-run-with-a-rather-long-name-for-a-narrow-terminal")
    go.touch()
    proj.wait(run_id, lambda s: s["state"] == "succeeded", "the run to end")
    _warm(proj)
    before = _served(proj)
    proj.env["COLUMNS"] = "60"
    served = proj.cli("status").stdout
    assert _served(proj) == before + 1
    proj.env["OUTLIVE_NO_DAEMON"] = "1"
    direct = proj.cli("status").stdout
    assert run_id in served and max(len(line) for line in served.splitlines()) <= 60, served
    assert served.splitlines()[0] == direct.splitlines()[0]


def test_an_idle_daemon_imports_ahead_what_a_fresh_projects_config_needs(
    make_project: Callable[..., Project],
) -> None:
    """Validating a project's config imports pydantic (~0.1 s); a daemon started where every
    config is cached did that in front of the first fresh project it served (the bench's
    Slurm submit: 0.22 s instead of 0.12). Once idle a moment it imports it ahead."""
    p = make_project()
    own = tempfile.mkdtemp(prefix="od-")  # a daemon of this test's own: its modules are ours
    os.chmod(own, 0o700)
    p.env["OUTLIVE_DAEMON_DIR"] = own
    p.env["OUTLIVE_NO_DAEMON"] = "1"
    p.cli("status", "--json")  # the config validated and cached, no daemon
    del p.env["OUTLIVE_NO_DAEMON"]
    _warm(p)  # this daemon reads the cached config: nothing makes it import pydantic
    (pid,) = [d["pid"] for d in _daemons(p)]

    def loaded() -> bool:
        return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()

    wait_for(loaded, "the idle daemon to import what validating a config needs", timeout_s=20)
    fresh = make_project(dirname="fresh", toml='[targets.box]\nhost = "10.0.0.5"\n')
    fresh.env.update(OUTLIVE_DAEMON_DIR=own)
    assert json.loads(fresh.cli("status", "--json").stdout)["runs"] == []  # served, validated
    p.cli("daemon", "stop", "--json")
    shutil.rmtree(own)
