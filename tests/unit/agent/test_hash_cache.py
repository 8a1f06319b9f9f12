"""The box's hash cache: a pull hashes only what changed since an earlier pull hashed it
(``outlive.agent.box.manifests``, ``hash-cache.json`` in the run dir), and never trusts a stamp
that a write could have left as it was."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from outlive import wire
from outlive.agent.box import manifests as M


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file the box reads to hash it, by path; the racy margin shrunk to 50 ms so that
    files made by the test settle at once (the real margin has its own test)."""
    read: list[str] = []
    real = M._sha256_counted

    def counting(path: str) -> tuple[str, int]:
        read.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(M, "_sha256_counted", counting)
    monkeypatch.setattr(wire, "RACY_MARGIN_NS", 50_000_000)
    return read


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(70_000))
    (root / "b.bin").write_bytes(b"b" * 5000)
    (root / "sub" / "c.bin").write_bytes(os.urandom(3000))
    _age()


def _age() -> None:
    """Let what was just written settle past the test's 50 ms margin."""
    import time

    time.sleep(0.12)


def _manifest(
    root: Path, store: Path, *, reuse: bool = True, extra: list[tuple[str, Path]] | None = None
) -> dict[str, Any]:
    roots = [{"label": "ckpt", "path": str(root)}]
    roots += [{"label": label, "path": str(path)} for label, path in extra or []]
    spec = {"roots": roots, "hash": True, "store_dir": str(store), "reuse": reuse}
    reply: dict[str, Any] = M.build_manifest(spec)
    return reply


def _hashed_once(tmp_path: Path) -> tuple[Path, Path]:
    """A tree (``ckpt``) hashed once by a pull, its cache in the run dir (``run``)."""
    root, store = tmp_path / "ckpt", tmp_path / "run"
    _tree(root)
    store.mkdir()
    _manifest(root, store)
    return root, store


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unchanged_tree_is_not_read_again_and_gives_the_same_manifest(
    tmp_path: Path, counted: list[str]
) -> None:
    root, store = tmp_path / "ckpt", tmp_path / "run"
    _tree(root)
    store.mkdir()
    first = _manifest(root, store)
    assert sorted(counted) == ["a.bin", "b.bin", "c.bin"] and first["reused_files"] == 0
    assert (store / wire.HASH_CACHE_NAME).is_file()
    counted.clear()
    second = _manifest(root, store)
    assert counted == []  # not one byte read
    assert second["reused_files"] == 3 and second["reused_bytes"] == 78_000
    assert second["sha256"] == first["sha256"]
    assert second["files"] == first["files"]


def test_a_file_rewritten_in_place_with_its_size_and_mtime_kept_is_read_again(
    tmp_path: Path, counted: list[str]
) -> None:
    """A flipped byte with the size and mtime put back (what fools rsync's quick check): the
    write moved its ctime, which no user can set back, so the box reads it again."""
    root, store = _hashed_once(tmp_path)
    target = root / "a.bin"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    with open(target, "r+b") as f:  # in place: same inode
        f.write(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_ino == before.st_ino and target.stat().st_mtime_ns == before.st_mtime_ns
    _age()
    counted.clear()
    again = _manifest(root, store)
    assert counted == ["a.bin"] and again["reused_files"] == 2
    (entry,) = [f for f in again["files"] if f["rel"] == "a.bin"]
    assert entry["sha256"] == _sha(target)


def test_a_file_replaced_or_grown_or_new_is_read_and_a_gone_one_forgotten(
    tmp_path: Path, counted: list[str]
) -> None:
    root, store = _hashed_once(tmp_path)
    replacement = root / ".b.bin.tmp-1"
    replacement.write_bytes(b"B" * 5000)  # the same size, a new inode by rename
    os.replace(replacement, root / "b.bin")
    (root / "sub" / "c.bin").unlink()
    (root / "d.bin").write_bytes(b"new")
    _age()
    counted.clear()
    again = _manifest(root, store)
    assert sorted(counted) == ["b.bin", "d.bin"] and again["reused_files"] == 1
    cache = json.loads((store / wire.HASH_CACHE_NAME).read_text())["files"]
    assert sorted(os.path.basename(p) for p in cache) == ["a.bin", "b.bin", "d.bin"]
    by_rel = {f["rel"]: f["sha256"] for f in again["files"]}
    assert by_rel["b.bin"] == _sha(root / "b.bin") and "sub/c.bin" not in by_rel


def test_a_file_changed_within_the_margin_is_never_kept(tmp_path: Path) -> None:
    """With the real 2 s margin, a file written just before its hashing is read again next
    time: a second write in the same timestamp tick would not have moved its stamp."""
    root, store = tmp_path / "ckpt", tmp_path / "run"
    root.mkdir()
    store.mkdir()
    (root / "fresh.bin").write_bytes(b"x" * 100)
    first = _manifest(root, store)
    second = _manifest(root, store)
    assert first["reused_files"] == second["reused_files"] == 0
    assert not (store / wire.HASH_CACHE_NAME).exists()  # nothing settled: nothing kept


def test_without_reuse_every_byte_is_read_and_the_cache_refreshed(
    tmp_path: Path, counted: list[str]
) -> None:
    root, store = _hashed_once(tmp_path)
    counted.clear()
    full = _manifest(root, store, reuse=False)  # pull --rehash
    assert sorted(counted) == ["a.bin", "b.bin", "c.bin"] and full["reused_files"] == 0
    counted.clear()
    assert _manifest(root, store)["reused_files"] == 3 and counted == []


def test_a_torn_or_foreign_or_lying_cache_is_no_cache(tmp_path: Path, counted: list[str]) -> None:
    root, store = tmp_path / "ckpt", tmp_path / "run"
    _tree(root)
    store.mkdir()
    cache = store / wire.HASH_CACHE_NAME
    for junk in (b'{"format": "outlive-hash-cache/1", "files": {"', b"[1, 2]", b'{"format": 9}'):
        cache.write_bytes(junk)
        counted.clear()
        reply = _manifest(root, store)
        assert sorted(counted) == ["a.bin", "b.bin", "c.bin"] and reply["reused_files"] == 0
    # a cache whose stamp matches but whose hash was never made then (settled too late)
    doc = json.loads(cache.read_text())
    for row in doc["files"].values():
        row[6] = max(row[3], row[4]) + 1  # "hashed" a nanosecond after its last change
    cache.write_text(json.dumps(doc))
    counted.clear()
    assert _manifest(root, store)["reused_files"] == 0 and len(counted) == 3


def test_the_cache_keeps_what_other_roots_hashed(tmp_path: Path, counted: list[str]) -> None:
    """A pull with ``--output results`` and one without share the run dir's cache: neither
    forgets what the other hashed."""
    root, out, store = tmp_path / "ckpt", tmp_path / "results", tmp_path / "run"
    _tree(root)
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    store.mkdir()
    _age()
    _manifest(root, store, extra=[("out/results", out)])
    _manifest(root, store)  # the checkpoint dir alone
    counted.clear()
    both = _manifest(root, store, extra=[("out/results", out)])
    assert counted == [] and both["reused_files"] == 4


def test_a_cache_that_cannot_be_written_is_said_and_costs_nothing_else(
    tmp_path: Path, counted: list[str]
) -> None:
    root = tmp_path / "ckpt"
    _tree(root)
    missing = tmp_path / "no-such-run-dir"
    reply = _manifest(root, missing)
    assert reply["sha256"] and len(reply["files"]) == 3
    assert "hash_cache_error" in reply and str(missing) in reply["hash_cache_error"]
    assert not list(tmp_path.glob("**/*.tmp-*"))


def test_a_file_written_while_it_was_hashed_is_never_kept(
    tmp_path: Path, counted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the run appends to while the box reads it (more bytes read than listed) is
    named unstable and hashed again next time, never taken from the cache."""
    root, store = tmp_path / "ckpt", tmp_path / "run"
    _tree(root)
    store.mkdir()
    real = M._sha256_counted

    def growing(path: str) -> tuple[str, int]:
        if path.endswith("a.bin"):
            with open(path, "ab") as f:
                f.write(b"more")  # the run appends while we read
        return real(path)

    monkeypatch.setattr(M, "_sha256_counted", growing)
    first = _manifest(root, store)
    assert first["unstable"] == ["ckpt/a.bin"]
    cache = json.loads((store / wire.HASH_CACHE_NAME).read_text())["files"]
    assert sorted(os.path.basename(p) for p in cache) == ["b.bin", "c.bin"]
