"""What a pull hashed here, kept so that the next pull into the same directory hashes only what
changed (``<dest>/.outlive/hash-cache.json``).

A result is reused only while the file's size, mtime, inode and ctime are those it had when it
was hashed (``tree.reusable``: rsync replaces a file by a new inode, a write in place moves its
ctime, and no user can set a ctime), and only where the file's last change came
``wire.RACY_MARGIN_NS`` before its hashing began: a write within the same timestamp tick as that
change would leave the stamp as it was (coarse kernel clocks, one-second filesystems, a network
volume's own clock). A
checkpoint's load result is reused only where it loaded; one whose load failed or could not be
tried (its loader was missing) is loaded again. ``pull --rehash``, ``verify`` and ``down`` never
reuse: they read every byte.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from outlive import wire
from outlive.verify.records import meta_dir
from outlive.verify.tree import FileResult

CACHE_FORMAT = "outlive-local-hash-cache/1"
_SHA256_HEX = 64


def cache_path(dest: Path) -> Path:
    return meta_dir(dest) / wire.HASH_CACHE_NAME


def settled(stamp: tuple[int, int, int, int], hashed_at_ns: int) -> bool:
    """Whether a file stamped (size, mtime_ns, inode, ctime_ns) had last changed
    ``wire.RACY_MARGIN_NS`` before its hashing began at ``hashed_at_ns``."""
    return max(stamp[1], stamp[3]) < hashed_at_ns - wire.RACY_MARGIN_NS


def load_cached(dest: Path) -> dict[str, FileResult]:
    """Relative path -> the result kept for it (``tree.verify_tree``'s ``known``, which checks
    each stamp against the file before reusing it); a missing, torn or foreign cache is none."""
    try:
        doc = json.loads(cache_path(dest).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        return {}
    files = doc.get("files")
    if not isinstance(files, dict):
        return {}
    out: dict[str, FileResult] = {}
    for rel, row in files.items():
        result = _result_of(rel, row)
        if result is not None:
            out[rel] = result
    return out


def _result_of(rel: object, row: object) -> FileResult | None:
    if not isinstance(rel, str) or not isinstance(row, dict):
        return None
    stamp, sha, at = row.get("stamp"), row.get("sha256"), row.get("hashed_at_ns")
    load = row.get("load")
    if not (
        isinstance(stamp, list)
        and len(stamp) == 4
        and all(isinstance(x, int) for x in stamp)
        and isinstance(sha, str)
        and len(sha) == _SHA256_HEX
        and isinstance(at, int)
        and (load is None or isinstance(load, str))
    ):
        return None
    stamp4 = (stamp[0], stamp[1], stamp[2], stamp[3])
    if not settled(stamp4, at):
        return None
    return FileResult(
        rel,
        True,
        size=stamp4[0],
        sha256=sha,
        load=load,
        load_ok=True if load is not None else None,
        stamp=stamp4,
        hashed_at_ns=at,
    )


def save_cache(dest: Path, results: Iterable[FileResult]) -> None:
    """Keep the regular files' hashes that a later pull may reuse (settled, and a checkpoint
    only where it loaded); the whole cache is replaced (a temp file renamed: never torn). A
    cache that cannot be written (a full disk) is skipped: it only saves time."""
    files: dict[str, dict[str, object]] = {}
    for r in results:
        if (
            r.kind != "file"
            or r.sha256 is None
            or r.stamp is None
            or r.hashed_at_ns is None
            or (r.load is not None and r.load_ok is not True)
            or not settled(r.stamp, r.hashed_at_ns)
        ):
            continue
        files[r.path] = {
            "stamp": list(r.stamp),
            "sha256": r.sha256,
            "hashed_at_ns": r.hashed_at_ns,
            "load": r.load,
        }
    path = cache_path(dest)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "files": files}, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
