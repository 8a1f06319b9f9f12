"""`push` on a real box: what is sent, what is refused, and the fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ssh_runs import wait_for

from outlive.testing import Box

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def _project(tmp_path: Path, box: Box, workdir: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    target = dict(box.target, workdir=str(workdir), durable=f"{workdir}.durable")
    lines = ["[project]", 'exclude = ["*.pt", "scratch/"]', "[targets.box]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    (proj / ".gitignore").write_text("data/\n*.log\n")
    (proj / "train.py").write_text("print('train')\n")
    (proj / "pkg").mkdir()
    (proj / "pkg" / "model.py").write_text("X = 1\n")
    (proj / "data").mkdir()
    (proj / "data" / "big.bin").write_bytes(b"x" * 1000)
    (proj / "weights.pt").write_bytes(b"w")
    (proj / "scratch").mkdir()
    (proj / "scratch" / "tmp.txt").write_text("t")
    (proj / "run.log").write_text("log")
    return proj


def _push(proj: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, "push", "box", "--json"], cwd=proj, capture_output=True, text=True, timeout=120
    )


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_push_honours_gitignore_and_excludes_and_creates_the_destination(
    tmp_path: Path, box: Box
) -> None:
    workdir = box.workdir / f"push-{time.time_ns()}" / "deep" / "dir"
    proj = _project(tmp_path, box, workdir)
    out = _push(proj)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verified"] is True and result["method"] == "rsync"
    assert _tree(workdir) == {".gitignore", "outlive.toml", "train.py", "pkg/model.py"}


def test_a_run_of_a_crlf_shell_script_is_refused_before_sending_anything(
    tmp_path: Path, box: Box
) -> None:
    workdir = box.workdir / f"crlf-{time.time_ns()}"
    proj = _project(tmp_path, box, workdir)
    (proj / "run.sh").write_bytes(b"#!/bin/bash\r\necho hi\r\n")
    out = subprocess.run(
        [OUTLIVE, "run", "-t", "box", "--", "bash", "run.sh"],
        cwd=proj, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "run.sh" in out.stderr and "U26" in out.stderr and "dos2unix run.sh" in out.stderr
    assert out.stderr.count("\n") == 1
    assert not workdir.exists()
    # `push` alone sends the tree and warns about the script it would break
    pushed = _push(proj)
    assert pushed.returncode == 0, pushed.stderr
    assert "run.sh" in pushed.stderr and "U26" in pushed.stderr
    assert json.loads(pushed.stdout)["warnings"] and (workdir / "run.sh").exists()


def test_push_falls_back_to_a_tar_stream_when_the_box_has_no_rsync(
    tmp_path: Path, box: Box
) -> None:
    fake = box.workdir / f"no-rsync-{time.time_ns()}.sh"
    fake.write_text("#!/bin/sh\necho 'sh: 1: rsync: not found' >&2\nexit 127\n")
    fake.chmod(0o755)
    # Only the box's own mount namespace sees this: rsync is "missing" there, not here.
    assert box.ssh("mount", "--bind", str(fake), "/usr/bin/rsync").returncode == 0
    try:
        workdir = box.workdir / f"tar-{time.time_ns()}"
        proj = _project(tmp_path, box, workdir)
        out = _push(proj)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["method"] == "tar" and result["verified"] is True
        assert _tree(workdir) == {".gitignore", "outlive.toml", "train.py", "pkg/model.py"}
    finally:
        box.ssh("umount", "/usr/bin/rsync")


def test_an_unchanged_tree_is_not_resent_but_a_box_edit_is_repaired_before_launch(
    tmp_path: Path, box: Box
) -> None:
    workdir = box.workdir / f"skip-{time.time_ns()}"
    proj = _project(tmp_path, box, workdir)
    assert _push(proj).returncode == 0
    (workdir / "train.py").write_text("print('edited on the box')\n")  # behind our back (U42)
    run = subprocess.run(
        [OUTLIVE, "run", "-t", "box", "--json", "--", sys.executable, "train.py"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (workdir / "train.py").read_text() == "print('train')\n"
    run_id = json.loads(run.stdout)["run_id"]
    wait_for(proj, run_id, lambda s: s["state"] not in ("pending", "running"), "the end")
    logs = subprocess.run([OUTLIVE, "logs", run_id], cwd=proj, capture_output=True, text=True)
    assert logs.stdout.strip() == "train"


def test_runpod_basic_ssh_proxy_is_refused_with_the_fix(tmp_path: Path) -> None:
    from outlive.config import load_config
    from outlive.errors import UsageError
    from outlive.lifecycle.push import push
    from outlive.session import Session

    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "outlive.toml").write_text(
        '[targets.pod]\nprofile = "runpod"\nhost = "abc123-64411@ssh.runpod.io"\n'
    )
    (proj / "train.py").write_text("pass\n")
    cfg = load_config(proj)
    with pytest.raises(UsageError, match="RP6"):
        push(Session(cfg), cfg.target("pod"))


def _change_in_place(path: Path, like: Path) -> None:
    """Change ``path``'s bytes but keep its size and give it ``like``'s mtime: what rsync's quick
    check (size and mtime) cannot see."""
    data = path.read_bytes()
    path.write_bytes(bytes(b ^ 1 for b in data[:1]) + data[1:])
    st = like.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_box_file_changed_with_size_and_mtime_kept_is_pushed_again_by_contents(
    tmp_path: Path, box: Box
) -> None:
    workdir = box.workdir / f"inplace-{time.time_ns()}"
    proj = _project(tmp_path, box, workdir)
    assert json.loads(_push(proj).stdout)["verified"] is True
    _change_in_place(workdir / "train.py", proj / "train.py")
    # `push`: the quick check skips the file, the box's hash check catches it, and the push
    # again by contents fixes it
    out = _push(proj)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verified"] is True
    assert (workdir / "train.py").read_bytes() == (proj / "train.py").read_bytes()
    # `run`: the push is skipped (the tree is unchanged), the launch is refused, and the push
    # again must not be fooled either
    _change_in_place(workdir / "train.py", proj / "train.py")
    out = subprocess.run(
        [OUTLIVE, "run", "-t", "box", "--json", "--", "python3", "train.py"],
        cwd=proj, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (workdir / "train.py").read_bytes() == (proj / "train.py").read_bytes()


def test_a_push_whose_stamp_cannot_be_kept_still_pushes_and_verifies(
    tmp_path: Path, box: Box
) -> None:
    """The stamp of the last push only spares the next launch a push: where it cannot be
    written (a file where its directory goes, a full disk) the push was done and verified but
    ended in a traceback."""
    workdir = box.workdir / f"stampless-{time.time_ns()}"
    proj = _project(tmp_path, box, workdir)
    (proj / ".outlive").mkdir()
    (proj / ".outlive" / "pushed").write_text("in the way")
    out = _push(proj)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verified"] is True
    assert (workdir / "train.py").read_text() == "print('train')\n"
