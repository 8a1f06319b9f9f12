"""Connect ahead against a real box (sshd in its own network namespace): ``outlive pull RUN``
starts the box's ssh handshake before its imports, from the command line the run's own
commands recorded, and the pull's connections ride on that master: one handshake, not two. A
record the config no longer matches starts nothing, and the pull still works.

Every ssh this side starts goes through a wrapper first on PATH that logs its argv and whether
a master's socket existed when it started; ``ssh -G`` (naming the socket, no connection) and
``ssh -O`` (asking the master) are not connections."""

from __future__ import annotations

import json
import marshal
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlive.testing import Box, wait_until

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A short TMPDIR of the test's own: its control sockets are this test's alone."""
    d = Path(tempfile.mkdtemp(prefix="oa-", dir="/tmp"))
    try:
        yield d
    finally:
        subprocess.run(["pkill", "-f", f"ControlPath={d}"], check=False)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env(tmp_path: Path, private_tmp: Path) -> dict[str, str]:
    real_ssh = shutil.which("ssh")
    assert real_ssh is not None
    wrap = tmp_path / "bin"
    wrap.mkdir()
    log = tmp_path / "ssh.log"
    (wrap / "ssh").write_text(
        "#!/bin/sh\n"
        f"n=$(ls {shlex.quote(str(private_tmp))}/outlive-$(id -u) 2>/dev/null | wc -l)\n"
        f'printf "%s\\t%s\\n" "$n" "$*" >> {shlex.quote(str(log))}\n'
        f'exec {shlex.quote(real_ssh)} "$@"\n'
    )
    (wrap / "ssh").chmod(0o755)
    e = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    e["PATH"] = f"{wrap}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    e["TMPDIR"] = str(private_tmp)
    e["OUTLIVE_NO_DAEMON"] = "1"
    return e


@pytest.fixture
def project(tmp_path: Path, box: Box, tag: str) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    target = dict(box.target, workdir=str(box.workdir / tag), durable=str(box.durable / tag))
    lines = ["[targets.box]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    return proj


def cli(proj: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, *args], cwd=proj, env=env, capture_output=True, text=True, timeout=300
    )


def connections(log: Path) -> list[tuple[int, str]]:
    """(sockets there when it started, argv) of each ssh that connects (not -G, not -O)."""
    found = []
    for line in log.read_text().splitlines():
        n, argv = line.split("\t", 1)
        words = argv.split()
        if "-G" in words or "-O" in words:
            continue
        found.append((int(n), argv))
    return found


def drop_master(proj: Path, env: dict[str, str], box: Box, private_tmp: Path) -> None:
    control = f"ControlPath={private_tmp}/outlive-{os.getuid()}/%C"
    subprocess.run(
        ["ssh", "-F", str(box.ssh_config), "-o", control, "-O", "exit", box.name],
        env=env,
        capture_output=True,
        check=False,
    )
    wait_until(
        lambda: not any((private_tmp / f"outlive-{os.getuid()}").iterdir()) or None,
        "the master to go",
        interval_s=0.05,
    )


def finished_run(proj: Path, env: dict[str, str], box: Box) -> str:
    out = cli(proj, env, "run", "-t", "box", "--name", "ahead", "--json", "--",
              "sh", "-c", "mkdir -p \"$OUTLIVE_CKPT_DIR\" && "
              "head -c 300000 /dev/urandom > \"$OUTLIVE_CKPT_DIR/w.bin\"")  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_id = str(json.loads(out.stdout)["run_id"])

    def succeeded() -> dict[str, Any] | None:
        st = json.loads(cli(proj, env, "status", "--json", run_id).stdout)["runs"][0]
        return dict(st) if st["state"] == "succeeded" else None

    assert wait_until(succeeded, "the run to succeed", interval_s=0.2) is not None
    return run_id


def test_pull_connects_ahead_once_and_rides_on_that_master(
    project: Path, env: dict[str, str], box: Box, private_tmp: Path, tmp_path: Path
) -> None:
    run_id = finished_run(project, env, box)
    record = marshal.loads((project / ".outlive" / "ssh-ahead.marshal").read_bytes())
    argv = record["targets"]["box"]["argv"]
    assert argv[0] == "ssh" and argv[-3:] == ["-N", "--", box.name]
    assert (project / ".outlive" / "ssh-ahead.marshal").stat().st_mode & 0o077 == 0

    drop_master(project, env, box, private_tmp)
    log = tmp_path / "ssh.log"
    log.write_text("")
    out = cli(project, env, "pull", run_id, "--json", "--to", str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True
    used = connections(log)
    assert used[0][1].endswith(f" -N -- {box.name}"), used  # the first ssh is the early one
    fresh = [a for n, a in used if n == 0]
    assert len(fresh) == 1, used  # and the only one that had no master to ride on
    assert len(used) >= 2  # the agent's channel and the rsync came after, on its master


def test_a_record_the_config_no_longer_matches_starts_nothing(
    project: Path, env: dict[str, str], box: Box, private_tmp: Path, tmp_path: Path
) -> None:
    run_id = finished_run(project, env, box)
    config = project / "outlive.toml"
    config.write_text(config.read_text() + "# edited\n")  # another stat: the record is stale
    drop_master(project, env, box, private_tmp)
    log = tmp_path / "ssh.log"
    log.write_text("")
    out = cli(project, env, "pull", run_id, "--json", "--to", str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    used = connections(log)
    assert not any(" -N " in f" {a} " for _, a in used), used
    assert [a for n, a in used if n == 0], used  # the pull connected on its own
    # ... and the pull's own session recorded the current command line for next time
    record = marshal.loads((project / ".outlive" / "ssh-ahead.marshal").read_bytes())
    assert record["targets"]["box"]["built_from"]["stat"][2] == config.stat().st_mtime_ns


def test_an_unreachable_box_is_said_after_one_attempt_not_two(
    project: Path, env: dict[str, str], box: Box, private_tmp: Path, tmp_path: Path
) -> None:
    """The early ssh finds the link cut; the pull says so in one sentence from what that ssh
    said, and starts no second connection to wait out the same failure (a timeout: 10 s)."""
    run_id = finished_run(project, env, box)
    drop_master(project, env, box, private_tmp)
    log = tmp_path / "ssh.log"
    log.write_text("")
    box.cut()
    try:
        out = cli(project, env, "pull", run_id, "--json", "--to", str(tmp_path / "got"))
    finally:
        box.restore()
    assert out.returncode != 0
    said = out.stderr.strip().splitlines()
    assert len(said) == 1 and "unreachable" in said[0], out.stderr
    assert [a for n, a in connections(log) if n == 0] == [
        a for _, a in connections(log) if " -N " in f" {a} "
    ]  # the one connection attempt was the early one
    assert not (tmp_path / "got").exists()  # nothing written for a pull that never started


def test_logs_connects_ahead_too(
    project: Path, env: dict[str, str], box: Box, private_tmp: Path, tmp_path: Path
) -> None:
    run_id = finished_run(project, env, box)
    drop_master(project, env, box, private_tmp)
    log = tmp_path / "ssh.log"
    log.write_text("")
    out = cli(project, env, "logs", run_id)
    assert out.returncode == 0, out.stderr
    used = connections(log)
    assert used[0][1].endswith(f" -N -- {box.name}"), used
    assert len([a for n, a in used if n == 0]) == 1, used
