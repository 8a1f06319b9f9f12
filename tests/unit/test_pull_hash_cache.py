"""An incremental pull reads only what changed: a file unchanged since an earlier pull keeps its
hash on the box (the run dir's ``hash-cache.json``) and here (``.outlive/hash-cache.json``);
anything a write could have touched is read again, ``pull --rehash`` reads every byte, and the
proof stays exact (the local target: the real agent as a subprocess, real rsync)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outlive import verify as V
from outlive import wire
from outlive.lifecycle.pull import pull
from outlive.lifecycle.transfer import PullOptions
from outlive.session import Session
from outlive.verify import hash_cache

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
SETTLE_S = wire.RACY_MARGIN_NS / 1e9 + 0.2


def _result(path: str, stamp: tuple[int, int, int, int], at: int, **kw: object) -> V.FileResult:
    return V.FileResult(path, True, size=stamp[0], sha256="a" * 64, stamp=stamp, hashed_at_ns=at,
                        **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_local_cache_keeps_only_settled_hashes_of_what_loaded(tmp_path: Path) -> None:
    now = time.time_ns()
    old = now - 10 * 10**9
    kept = _result("ckpt/a.npz", (5, old, 1, old), now, load="npz", load_ok=True)
    fresh = _result("ckpt/b.bin", (5, now - 10**9, 2, now - 10**9), now)  # changed 1 s before
    unloaded = _result("ckpt/c.pt", (5, old, 3, old), now, load="torch", load_ok=None)
    failed = _result("ckpt/d.pt", (5, old, 4, old), now, load="torch", load_ok=False)
    plain = _result("out/e.txt", (5, old, 5, old), now)
    hash_cache.save_cache(tmp_path, [kept, fresh, unloaded, failed, plain])
    got = hash_cache.load_cached(tmp_path)
    assert sorted(got) == ["ckpt/a.npz", "out/e.txt"]
    assert got["ckpt/a.npz"].load_ok is True and got["ckpt/a.npz"].stamp == (5, old, 1, old)
    assert got["out/e.txt"].load is None and got["out/e.txt"].hashed_at_ns == now
    for junk in ("", "[]", '{"format": "outlive-local-hash-cache/1", "files": []}', "{"):
        hash_cache.cache_path(tmp_path).write_text(junk)
        assert hash_cache.load_cached(tmp_path) == {}


def _pull(proj: Path, run_id: str, **opts: object) -> dict[str, object]:
    result = pull(Session.open(proj), run_id, PullOptions(**opts))  # type: ignore[arg-type]
    assert result["ok"], (result["verify"]["problems"], result["transfer"])  # type: ignore[index]
    return result


def test_an_unchanged_run_is_pulled_again_without_reading_it_and_a_change_is_caught(
    local_run: tuple[Path, str],
) -> None:
    proj, run_id = local_run
    time.sleep(SETTLE_S)  # the run's files settle on the "box"
    first = _pull(proj, run_id)
    files = int(first["files"])  # type: ignore[call-overload]
    assert first["hashes_reused"]["box_files"] == 0  # type: ignore[index]
    time.sleep(SETTLE_S)  # the landed files settle here
    second = _pull(proj, run_id)
    assert second["hashes_reused"]["box_files"] == files  # type: ignore[index]
    assert second["hashes_reused"]["local_files"] == 0  # type: ignore[index]  # landed too late
    third = _pull(proj, run_id)
    reused = third["hashes_reused"]
    assert reused == {  # not one byte read at either end
        "box_files": files,
        "box_bytes": third["size_bytes"],
        "local_files": files,
        "local_bytes": third["size_bytes"],
    }
    assert third["manifest_sha256"] == first["manifest_sha256"]
    checkpoints = third["verify"]["checkpoints_loaded"]  # type: ignore[index]
    assert checkpoints == first["verify"]["checkpoints_loaded"] > 0  # type: ignore[index]

    # A byte flipped here with size and mtime put back: its ctime moved, so it is read
    # again, found to differ, kept aside and pulled once more.
    dest = Path(str(third["dest"]))
    victim = dest / "ckpt" / "final.npz"
    before = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    with open(victim, "r+b") as f:
        f.write(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    fixed = _pull(proj, run_id)
    assert fixed["hashes_reused"]["local_files"] == files - 1  # type: ignore[index]
    assert "ckpt/final.npz" in fixed["superseded"]  # type: ignore[operator]
    assert V.verify_dir(dest).ok  # a full re-read agrees

    # --rehash reads every byte at both ends
    full = _pull(proj, run_id, rehash=True)
    assert full["hashes_reused"] == {  # type: ignore[comparison-overlap]
        "box_files": 0, "box_bytes": 0, "local_files": 0, "local_bytes": 0
    }  # fmt: skip


def test_a_box_file_rewritten_with_its_size_and_mtime_kept_is_pulled_anew(
    local_run: tuple[Path, str],
) -> None:
    """On the box, a checkpoint rewritten in place with its size and mtime put back: rsync's
    quick check skips it, the box's cache does not (its ctime moved), so the proof sees the
    difference and the pull brings the new bytes."""
    proj, run_id = local_run
    box_file = Path(Session.open(proj).store.resolve(run_id).ckpt_dir) / "notes.bin"
    box_file.write_bytes(os.urandom(4096))
    time.sleep(SETTLE_S)
    _pull(proj, run_id)
    time.sleep(SETTLE_S)
    second = _pull(proj, run_id)
    before = box_file.stat()
    data = bytearray(box_file.read_bytes())
    data[100] ^= 0xFF
    with open(box_file, "r+b") as f:
        f.write(bytes(data))
    os.utime(box_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = _pull(proj, run_id)
    assert after["manifest_sha256"] != second["manifest_sha256"]
    assert after["hashes_reused"]["box_files"] == int(after["files"]) - 1  # type: ignore[index,call-overload]
    dest = Path(str(after["dest"]))
    assert (dest / "ckpt" / "notes.bin").read_bytes() == box_file.read_bytes()
    assert "ckpt/notes.bin" in after["superseded"]  # type: ignore[operator]  # the old copy


def test_pull_rehash_and_the_reuse_line_on_the_cli(local_run: tuple[Path, str]) -> None:
    proj, run_id = local_run
    time.sleep(SETTLE_S)
    for _ in range(2):
        subprocess.run([OUTLIVE, "pull", run_id], cwd=proj, check=True, capture_output=True)
        time.sleep(SETTLE_S)
    out = subprocess.run([OUTLIVE, "pull", run_id], cwd=proj, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "not read again" in out.stdout and "pull --rehash reads every byte" in out.stdout
    out = subprocess.run(
        [OUTLIVE, "pull", run_id, "--rehash", "--json"], cwd=proj, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["verify"]["ok"] and doc["hashes_reused"]["box_files"] == 0
    assert doc["hashes_reused"]["local_files"] == 0


@pytest.mark.parametrize("junk", [b"{", b"\x00" * 10])
def test_a_torn_local_cache_only_costs_a_full_read(
    local_run: tuple[Path, str], junk: bytes
) -> None:
    proj, run_id = local_run
    first = _pull(proj, run_id)
    dest = Path(str(first["dest"]))
    hash_cache.cache_path(dest).write_bytes(junk)
    again = _pull(proj, run_id)
    assert again["hashes_reused"]["local_files"] == 0  # type: ignore[index]
    assert V.verify_dir(dest).ok
