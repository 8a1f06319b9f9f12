"""The pull's early rsync against a real box (sshd in its own network namespace, real rsync):
the checkpoint root's rsync starts as soon as the box's channel is open and waits for its
list; it moves the tree where it fits the plan, is ended unused where it does not, and a pull
killed at any point leaves no PULL_VERIFIED.json (and no rsync behind) and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from outlive.testing import Box, wait_until

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


@pytest.fixture
def project(tmp_path: Path, box: Box, tag: str) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    target = dict(box.target, workdir=str(box.workdir / tag), durable=str(box.durable / tag))
    lines = ["[targets.box]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    return proj


def cli(proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OUTLIVE, *args], cwd=proj, capture_output=True, text=True, timeout=300)


def finished_run(proj: Path, name: str) -> dict[str, Any]:
    out = cli(proj, "run", "-t", "box", "--name", name, "--json", "--", "true")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]

    def succeeded() -> dict[str, Any] | None:
        st = json.loads(cli(proj, "status", "--json", run_id).stdout)["runs"][0]
        return dict(st) if st["state"] == "succeeded" else None

    done: dict[str, Any] | None = wait_until(succeeded, f"run {name} to succeed", interval_s=0.2)
    assert done is not None
    return done


def tree(root: Path, *, random: bool, mib_per_file: int = 1) -> None:
    """Six files in three directories, and (random) a small one at the top."""
    for d in range(3):
        for f in range(2):
            path = root / f"shard-{d}" / f"part-{f}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            size = mib_per_file << 20
            path.write_bytes(os.urandom(size) if random else bytes(size))
    if random:
        (root / "meta.json").write_text('{"step": 3}')


def pull(proj: Path, run_id: str, dest: Path) -> dict[str, Any]:
    out = cli(proj, "pull", run_id, "--json", "--to", str(dest))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def rsyncs_into(dest: Path) -> list[str]:
    """Processes here whose command line names ``dest`` (the pull's rsyncs)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(dest).encode() in a for a in argv) and argv[0].endswith(b"rsync"):
            found.append(pid)
    return found


def test_the_early_rsync_moves_a_small_tree_and_is_ended_unused_where_it_does_not_fit(
    project: Path,
) -> None:
    st = finished_run(project, "early")
    tree(Path(st["ckpt_dir"]), random=True)
    dest = project / "pulled"
    result = pull(project, st["run_id"], dest)
    assert result["ok"] and (dest / "PULL_VERIFIED.json").is_file()
    (unit,) = result["transfer"]["units"]
    assert unit["label"] == "ckpt" and unit["started_early"] and len(unit["attempts"]) == 1
    assert result["files"] == 7

    # Zeros compress: the plan moves the root with -z, which is not the guess; the guess ends
    # unused (nothing left running) and the pull is the same as without it.
    st = finished_run(project, "squeezed")
    tree(Path(st["ckpt_dir"]), random=False)
    dest = project / "pulled-z"
    result = pull(project, st["run_id"], dest)
    assert result["ok"] and (dest / "PULL_VERIFIED.json").is_file()
    (unit,) = result["transfer"]["units"]
    assert unit["compress"] and not unit["started_early"]
    assert rsyncs_into(dest) == []


def test_a_pull_killed_at_any_point_claims_nothing_and_the_next_one_verifies(
    project: Path,
) -> None:
    st = finished_run(project, "killed")
    tree(Path(st["ckpt_dir"]), random=True, mib_per_file=4)
    dest = project / "pulled-killed"
    argv = [OUTLIVE, "pull", st["run_id"], "--json", "--to", str(dest), "--bwlimit-kbps", "8000"]
    for delay_s in (0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0):
        puller = subprocess.Popen(
            argv, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay_s)
        if puller.poll() is not None:
            break  # it finished first: the pulls below start from what it proved
        os.kill(puller.pid, signal.SIGKILL)
        puller.wait()
        # Its rsyncs end with it (their pipes close: an early one still waiting for its list
        # reads an empty one), and a kill leaves no proof behind, unless the pull had written
        # it already (a resumed pull can finish within the delay on a loaded machine): then
        # the proof holds for what is there.
        wait_until(lambda: not rsyncs_into(dest), "the killed pull's rsyncs to end")
        if (dest / "PULL_VERIFIED.json").exists():
            checked = cli(project, "verify", str(dest), "--json")
            assert checked.returncode == 0, f"killed after {delay_s} s: {checked.stdout}"
            break
    result = pull(project, st["run_id"], dest)
    assert result["ok"] and result["files"] == 7
    verified = json.loads((dest / "PULL_VERIFIED.json").read_text())
    assert verified["manifest_sha256"] == result["manifest_sha256"]
    for rel in [f"shard-{d}/part-{f}.bin" for d in range(3) for f in range(2)]:
        assert (dest / "ckpt" / rel).read_bytes() == (Path(st["ckpt_dir"]) / rel).read_bytes()


@pytest.mark.parametrize("whom", ["the terminal's process group", "the CLI alone"])
def test_ctrl_c_stops_the_pull_at_once_and_the_next_pull_resumes(project: Path, whom: str) -> None:
    """Ctrl-C reaches rsync and its ssh too (a terminal signals the whole process group): what
    they then report (a broken pipe, code 255) is no fault to retry, and a new attempt would
    carry on the transfer the user stopped, to its end, before the CLI said "interrupted".
    A SIGINT to the CLI alone ends its rsyncs just the same."""
    st = finished_run(project, f"ctrlc-{whom.split()[1]}")
    tree(Path(st["ckpt_dir"]), random=True, mib_per_file=8)  # 48 MiB at 4 MB/s: ~12 s
    dest = project / "pulled-ctrlc"
    argv = [OUTLIVE, "pull", st["run_id"], "--to", str(dest), "--bwlimit-kbps", "4000"]
    puller = subprocess.Popen(
        argv, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    partial = dest / "ckpt"
    wait_until(
        lambda: any(p.is_file() and p.stat().st_size for p in partial.rglob("*")),
        "the pull's first bytes to land",
        interval_s=0.05,
    )
    if whom.startswith("the terminal"):
        os.killpg(puller.pid, signal.SIGINT)
    else:
        os.kill(puller.pid, signal.SIGINT)
    _out, err = puller.communicate(timeout=60)
    assert puller.returncode == 130
    assert err.strip().splitlines() == ["outlive: interrupted"], err
    wait_until(lambda: not rsyncs_into(dest), "the stopped pull's rsyncs to end")
    # Stopped, not carried on to the end: the tree is not all here, and no proof was written.
    moved = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file())
    assert moved < 48 << 20
    assert not (dest / "PULL_VERIFIED.json").exists()
    result = pull(project, st["run_id"], dest)
    assert result["ok"] and result["files"] == 7
