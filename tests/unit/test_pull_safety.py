"""Issue 12 (4, 5, 6, 7, 10): the holes a pull, verify and the gate left open, each reproduced
here and held shut.

4. ``down`` proves the local copy by content (a flipped byte with size and mtime kept refuses);
5. a symlink in the results is never silent data loss (kept, pulled as content, or listed as
   not pulled and counted lost by the gate);
6. manifest paths are checked before anything is moved or written;
7. a full disk under the box's run dir does not block the pull;
10. a full or too small local disk is one sentence and resumes; ``--to`` keeps what it replaces;
    no command creates ``.outlive/`` outside a project.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlive import verify as V
from outlive import wire
from outlive.agent.box import manifests as box_manifests
from outlive.config import load_config
from outlive.errors import LocalDiskFull, NoProject, UnsafeManifest
from outlive.lifecycle import gate
from outlive.lifecycle import pull as pull_mod
from outlive.lifecycle.pull import PullOptions, pull
from outlive.session import Session
from outlive.store import PullRecord, RunRecord, Store

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mounts a tmpfs (needs root)")


# ---------------------------------------------------------------------------------------------
# helpers


def _record(proj: Path, run_id: str) -> RunRecord:
    return Store(proj / ".outlive").resolve(run_id)


def _pull_record(proj: Path, run_id: str) -> PullRecord:
    rows = Store(proj / ".outlive").pulls([run_id])
    return rows[-1]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """mount(path, size): a small tmpfs, unmounted at the end."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True)  # fmt: skip
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    """Fill the filesystem of ``directory`` to the last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 4096, b"\0"):
            try:
                while True:
                    os.write(fd, chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def _box_reply(roots: list[dict[str, str]], **spec: Any) -> dict[str, Any]:
    return box_manifests.build_manifest({"roots": roots, "hash": True, **spec})


# ---------------------------------------------------------------------------------------------
# 4. the gate proves the local copy by content


def _pulled_dir(tmp_path: Path) -> tuple[Path, PullRecord]:
    dest = tmp_path / "pulled"
    (dest / "ckpt").mkdir(parents=True)
    (dest / "ckpt" / "w.bin").write_bytes(os.urandom(200_000))
    (dest / "ckpt" / "latest").symlink_to("w.bin")
    entries = [
        V.Entry("ckpt/w.bin", 200_000, V.hash_file(dest / "ckpt" / "w.bin")[0]),
        V.Entry("ckpt/latest", link="w.bin"),
    ]
    manifest = V.Manifest.build([("ckpt", "/box/ckpt")], entries)
    V.store_manifest(dest, manifest)
    info = {
        "run_id": "r1",
        "name": "n",
        "target": "box",
        "roots": [],
        "manifest_sha256": manifest.sha256,
    }
    V.write_json_atomic(V.meta_dir(dest) / V.PULL_INFO, info)
    report = V.verify_tree(dest, manifest)
    assert report.ok, report.problems
    V.write_verified(dest, report, info)
    rec = PullRecord("r1", str(dest), manifest.sha256, [{"label": "ckpt", "path": "/box/ckpt"}],
                     2, 200_000, True, time.time())  # fmt: skip
    return dest, rec


def test_gate_refuses_a_flipped_byte_even_with_size_and_mtime_kept(tmp_path: Path) -> None:
    dest, rec = _pulled_dir(tmp_path)
    manifest, problem = gate.check_pulled_copy(rec)
    assert manifest is not None and problem is None
    path = dest / "ckpt" / "w.bin"
    before = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(123_456)
        byte = f.read(1)
        f.seek(123_456)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino,
    )  # fmt: skip
    manifest, problem = gate.check_pulled_copy(rec)
    assert manifest is None and problem is not None
    assert "changed content" in problem and "w.bin" in problem


# ---------------------------------------------------------------------------------------------
# 5. symlinks in the results


def _linked_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "box" / "ckpt"
    (root / "step-1").mkdir(parents=True)
    (root / "step-1" / "w.bin").write_bytes(b"w" * 5000)
    (root / "latest").symlink_to("step-1")  # relative, inside: kept as a link
    (root / "loop").symlink_to(".")  # back to a listed directory: kept as a link
    (root / "dangling").symlink_to("nowhere")  # nothing behind it: kept as a link
    (root / "best.bin").symlink_to(root / "step-1" / "w.bin")  # absolute, inside: content
    outside = tmp_path / "volume"
    (outside / "data").mkdir(parents=True)
    (outside / "data" / "shard.bin").write_bytes(b"s" * 7000)
    (root / "data").symlink_to(outside / "data")  # outside the roots: listed, not pulled
    return root, outside


def test_the_box_reports_every_symlink_and_follows_only_what_it_may(tmp_path: Path) -> None:
    root, outside = _linked_tree(tmp_path)
    reply = _box_reply([{"label": "ckpt", "path": str(root)}])
    files = {f["path"]: f for f in reply["files"]}
    assert files["ckpt/latest"]["link"] == "step-1" and "outside" not in files["ckpt/latest"]
    assert files["ckpt/loop"]["link"] == "." and files["ckpt/dangling"]["link"] == "nowhere"
    assert files["ckpt/best.bin"]["size"] == 5000 and "link" not in files["ckpt/best.bin"]
    assert files["ckpt/data"]["outside"] == str(outside / "data")
    assert "ckpt/data/shard.bin" not in files
    manifest = V.Manifest.from_reply(reply)
    assert [e.path for e in manifest.not_pulled] == ["ckpt/data"]
    followed = _box_reply([{"label": "ckpt", "path": str(root)}], follow_links=True)
    files = {f["path"]: f for f in followed["files"]}
    assert files["ckpt/data/shard.bin"]["size"] == 7000 and "ckpt/data" not in files
    assert V.Manifest.from_reply(followed).not_pulled == []


def _symlink_out(proj: Path, run_id: str, tmp_path: Path) -> Path:
    ckpt = Path(_record(proj, run_id).ckpt_dir).expanduser()
    ext = tmp_path / "volume"
    ext.mkdir()
    (ext / "shard.bin").write_bytes(os.urandom(9000))
    (ckpt / "ext").symlink_to(ext)
    (ckpt / "latest-link").symlink_to("final.npz")
    return ext


def test_a_link_outside_the_roots_is_listed_by_pull_and_lost_for_the_gate(
    local_run: tuple[Path, str], tmp_path: Path
) -> None:
    proj, run_id = local_run
    ext = _symlink_out(proj, run_id, tmp_path)
    notes: list[str] = []
    result = pull(Session.open(proj), run_id, on_note=notes.append)
    assert result["ok"], result["verify"]["problems"]
    assert result["not_pulled"] == ["ckpt/ext"]
    assert any(w.startswith("not pulled: ckpt/ext -> ") for w in result["warnings"])
    dest = Path(result["dest"])
    assert not os.path.lexists(dest / "ckpt" / "ext")
    assert os.readlink(dest / "ckpt" / "latest-link") == "final.npz"
    # the gate: the box's look now, against this verified pull
    rec = _record(proj, run_id)
    view = _gate_view(proj, rec, follow=False)
    (lost,) = view["uncovered"]
    assert lost["path"] == "ckpt/ext" and str(ext) in lost["why"]
    report = _gate_report([view])
    verdict = gate.decide(report, confirm="box")
    assert not verdict["allowed"] and "ckpt/ext" in str(verdict["refused"])
    # --follow-links pulls the content, and the gate (which reads pull.json) agrees
    result = pull(Session.open(proj), run_id, PullOptions(follow_links=True))
    assert result["ok"] and result["not_pulled"] == []
    assert (dest / "ckpt" / "ext" / "shard.bin").read_bytes() == (ext / "shard.bin").read_bytes()
    assert gate._followed_links(Store(proj / ".outlive").pulls([run_id]))
    view = _gate_view(proj, rec, follow=True)
    assert view["covered"], view["uncovered"]


def _gate_view(proj: Path, rec: RunRecord, *, follow: bool) -> gate.RunView:
    sess = Session.open(proj)
    target = sess.cfg.target(rec.target)
    roots = pull_mod.result_roots(target, rec, [])
    box = _box_reply(roots, follow_links=follow)
    covered: dict[str, str] = {}
    for p in Store(proj / ".outlive").pulls([rec.run_id])[-1:]:
        manifest, problem = gate.check_pulled_copy(p)
        assert manifest is not None, problem
        for entry in manifest.entries.values():
            covered[gate._abs(manifest.roots, entry.path)] = gate._entry_key(entry)
    reply: Any = {"manifests": [box], "probes": [{"state": "succeeded"}]}
    return gate._run_view(rec, 0, reply, {rec.run_id: 0}, covered, {})


def _gate_report(views: list[gate.RunView]) -> gate.GateReport:
    lost: list[gate.Lost] = [
        {**u, "runs": [v["run_id"]], "names": [v["name"]]} for v in views for u in v["uncovered"]
    ]
    report: Any = {
        "target": "box", "reachable": True, "error": None, "runs": views,
        "lost_if_abandoned": lost, "teardown": {"plan": []},
    }  # fmt: skip
    return report  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# 6. manifest paths


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "ckpt/../../x", "ckpt/a\x00b", "", "ckpt//x", "ckpt/./x", "elsewhere/x"]
)
def test_a_hostile_manifest_path_is_refused(bad: str) -> None:
    reply = {
        "roots": [{"label": "ckpt", "path": "/box/ckpt"}],
        "files": [{"path": bad, "size": 1, "sha256": "0" * 64}],
    }
    with pytest.raises(UnsafeManifest):
        V.Manifest.from_reply(reply)


def test_a_file_below_a_link_entry_is_refused() -> None:
    reply = {
        "roots": [{"label": "ckpt", "path": "/box/ckpt"}],
        "files": [
            {"path": "ckpt/evil", "link": "/etc"},
            {"path": "ckpt/evil/passwd", "size": 1, "sha256": "0" * 64},
        ],
    }
    with pytest.raises(UnsafeManifest, match="below the entry"):
        V.Manifest.from_reply(reply)


def _hostile_backend(sess: Session, monkeypatch: pytest.MonkeyPatch, damage: Any) -> None:
    real = sess.backend

    def backend(target: Any) -> Any:
        b = real(target)
        cls = type(b)
        orig = cls.manifest

        def manifest(self: Any, request: Any, **kw: Any) -> Any:
            reply = orig(self, request, **kw)
            for m in reply["manifests"]:
                damage(m)
            return reply

        monkeypatch.setattr(cls, "manifest", manifest)
        return b

    monkeypatch.setattr(sess, "backend", backend)


@pytest.mark.parametrize("path", ["../../evil", "/tmp/evil-outlive", "ckpt/../../evil"])
def test_a_hostile_roster_writes_nothing(
    local_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    proj, run_id = local_run

    def damage(m: dict[str, Any]) -> None:
        f = m["files"][0]
        f["path"], f["rel"] = path, path

    sess = Session.open(proj)
    _hostile_backend(sess, monkeypatch, damage)
    dest = tmp_path / "dest"
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsafeManifest):
        pull(sess, run_id, PullOptions(dest=dest))
    assert not dest.exists() and sorted(os.listdir(tmp_path)) == before
    assert not Path("/tmp/evil-outlive").exists()


def test_a_local_symlink_leading_out_of_the_destination_is_refused(
    local_run: tuple[Path, str], tmp_path: Path
) -> None:
    proj, run_id = local_run
    dest = tmp_path / "dest"
    dest.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dest / "ckpt").symlink_to(elsewhere)
    with pytest.raises(UnsafeManifest, match="outside"):
        pull(Session.open(proj), run_id, PullOptions(dest=dest))
    assert os.listdir(elsewhere) == [] and os.listdir(dest) == ["ckpt"]


def test_the_many_paths_proof_agrees_with_resolving_each_path_alone(tmp_path: Path) -> None:
    """``check_inside`` resolves each directory once; its verdict is the one a ``realpath``
    of every path would give, for a symlink at any depth (a directory, a file, a link entry)."""
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    (dest / "ckpt" / "deep" / "er").mkdir(parents=True)
    outside.mkdir()
    (dest / "ckpt" / "inner").symlink_to(dest / "ckpt" / "deep")  # stays inside
    (dest / "ckpt" / "away").symlink_to(outside)  # a directory link leading out
    (dest / "ckpt" / "deep" / "file.bin").symlink_to(outside / "f")  # a file link leading out
    good = {f"ckpt/deep/er/part-{i}.bin": False for i in range(500)}
    good |= {"ckpt/inner/er/x.bin": False, "ckpt/new/dir/y.bin": False, "ckpt/away": True}
    V.check_inside(dest, good)  # a link entry: only its parent must stay inside
    for bad in ("ckpt/away/x.bin", "ckpt/deep/file.bin", "ckpt/inner/file.bin"):
        with pytest.raises(UnsafeManifest, match="outside"):
            V.check_inside(dest, {**good, bad: False})
        with pytest.raises(UnsafeManifest, match="outside"):
            V.local_path(dest, bad)
    for rel in good:  # each alone, the slow way, says the same
        assert V.local_path(dest, rel, is_link=good[rel]) == dest / rel


# ---------------------------------------------------------------------------------------------
# 7. a full disk on the box


@needs_root
def test_the_manifest_comes_back_inline_when_the_run_dirs_disk_is_full(
    tmp_path: Path, tmpfs: Any
) -> None:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "w.bin").write_bytes(os.urandom(10_000))
    run_dir = tmpfs(tmp_path / "run", "64k")
    _fill(run_dir)
    reply = _box_reply([{"label": "ckpt", "path": str(root)}], store_dir=str(run_dir))
    assert reply["stored"] is None and "No space left" in reply["store_error"]
    assert V.Manifest.from_reply(reply).sha256 == reply["sha256"]


@needs_root
def test_pull_passes_when_the_box_run_dir_is_full(local_run: tuple[Path, str], tmpfs: Any) -> None:
    proj, run_id = local_run
    run_dir = Path(_record(proj, run_id).run_dir).expanduser()
    manifests = tmpfs(run_dir / wire.MANIFESTS_DIRNAME, "64k")
    _fill(manifests)
    result = pull(Session.open(proj), run_id)
    assert result["ok"], result["verify"]["problems"]
    assert any("could not keep its copy of the manifest" in w for w in result["warnings"])
    assert V.verify_dir(Path(result["dest"])).ok


# ---------------------------------------------------------------------------------------------
# 10. local safety


def _big_file(proj: Path, run_id: str, size: int, *, sparse: bool = False) -> None:
    ckpt = Path(_record(proj, run_id).ckpt_dir).expanduser()
    if sparse:  # a few bytes on the box's disk, ``size`` bytes once pulled
        with open(ckpt / "big.bin", "wb") as f:
            f.truncate(size)
            f.write(b"head")
    else:
        (ckpt / "big.bin").write_bytes(os.urandom(size))


@needs_root
@pytest.mark.parametrize("sparse", [False, True])
def test_a_pull_that_cannot_fit_is_refused_before_anything_is_written(
    local_run: tuple[Path, str], tmp_path: Path, tmpfs: Any, sparse: bool
) -> None:
    proj, run_id = local_run
    _big_file(proj, run_id, 3 << 20, sparse=sparse)
    small = tmpfs(tmp_path / "small", "1m")
    with pytest.raises(LocalDiskFull, match=r"big.bin is 3.0 MiB but .* free"):
        pull(Session.open(proj), run_id, PullOptions(dest=small / "d"))
    assert os.listdir(small) == []
    out = subprocess.run([OUTLIVE, "pull", run_id, "--to", str(small / "d")], cwd=proj,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "free" in out.stderr


@needs_root
def test_a_full_local_disk_mid_pull_is_one_sentence_and_the_next_pull_resumes(
    local_run: tuple[Path, str], tmp_path: Path, tmpfs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj, run_id = local_run
    _big_file(proj, run_id, 3 << 20)
    small = tmpfs(tmp_path / "small", "2m")
    monkeypatch.setattr(pull_mod, "free_bytes", lambda _p: 1 << 40)  # the check is fooled
    dest = small / "d"
    with pytest.raises(LocalDiskFull, match=r"is full.*run the same pull again") as err:
        pull(Session.open(proj), run_id, PullOptions(dest=dest, retries=2))
    assert str(dest) in str(err.value) and "\n" not in str(err.value)
    kept = [p for p in dest.rglob("*") if p.is_file() and ".outlive" not in p.parts[-3:]]
    assert kept  # what landed (and the half file) stays
    subprocess.run(["mount", "-o", "remount,size=16m", str(small)], check=True)
    monkeypatch.undo()
    result = pull(Session.open(proj), run_id, PullOptions(dest=dest))
    assert result["ok"], result["verify"]["problems"]


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_pull_to_keeps_a_local_file_that_differs(
    local_run: tuple[Path, str], tmp_path: Path, keep_mtime: bool
) -> None:
    proj, run_id = local_run
    dest = tmp_path / "mine"
    (dest / "ckpt").mkdir(parents=True)
    box_final = Path(_record(proj, run_id).ckpt_dir).expanduser() / "final.npz"
    same_size = os.urandom(box_final.stat().st_size)
    (dest / "ckpt" / "final.npz").write_bytes(same_size)
    box_mtime = box_final.stat().st_mtime_ns
    if keep_mtime:  # rsync's quick check (size + mtime) takes it for the same file
        os.utime(dest / "ckpt" / "final.npz", ns=(box_mtime, box_mtime))
    (dest / "ckpt" / "notes.txt").write_text("mine")  # not on the box: left alone
    result = pull(Session.open(proj), run_id, PullOptions(dest=dest))
    assert "ckpt/final.npz" in result["superseded"]
    (kept,) = (tmp_path / "mine.superseded").glob("*/ckpt/final.npz")
    assert kept.read_bytes() == same_size
    assert (dest / "ckpt" / "final.npz").read_bytes() == box_final.read_bytes()
    assert (dest / "ckpt" / "notes.txt").read_text() == "mine"
    assert not result["ok"] and result["verify"]["extra"] == ["ckpt/notes.txt"]
    assert result["verify"]["problems"] == ["ckpt/notes.txt: extra file, not on the box"]


@pytest.mark.parametrize("argv", [["status"], ["status", "--json"], ["pull", "abc"],
                                  ["logs", "abc"], ["down", "box"], ["verify", "."]])  # fmt: skip
def test_no_command_creates_state_outside_a_project(tmp_path: Path, argv: list[str]) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    assert not any((p / m).exists() for p in (bare, *bare.parents)
                   for m in ("outlive.toml", "pyproject.toml", ".git"))  # fmt: skip
    out = subprocess.run([OUTLIVE, *argv], cwd=bare, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert os.listdir(bare) == []
    if argv[0] in ("status", "pull", "logs"):
        assert "no outlive project here or above; run `outlive init`" in out.stderr


def test_a_request_for_a_directory_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    gone = tmp_path / "gone" / "deeper"
    cfg = load_config(gone)
    with pytest.raises(NoProject):
        Store(cfg.state_dir).all()
    assert not (tmp_path / "gone").exists()
