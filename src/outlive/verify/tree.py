"""Checking a local tree against a manifest: exact roster, sizes, SHA-256, link targets, and a
load of every checkpoint; each problem names its file."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from outlive._hashing import HASH_BLOCK_BYTES
from outlive.verify.loaders import check_load
from outlive.verify.manifest import Entry, Manifest

META_DIR = ".outlive"
VERIFIED_NAME = "PULL_VERIFIED.json"
MAX_WORKERS = 8


class FileResultJson(TypedDict, total=False):
    """One file of ``verify --json``'s ``results`` and of PULL_VERIFIED.json's ``files``: a link
    has ``link`` where a file has ``size`` and ``sha256``."""

    path: str
    ok: bool
    link: str
    size: int | None
    sha256: str | None
    load: str | None
    load_ok: bool | None
    load_check: str | None  # "loaded" | "failed" | "skipped" | None (not a checkpoint)
    load_skipped: str | None  # why a skipped load check was skipped ("torch not installed")
    problem: str | None


class ReportJson(TypedDict):
    """``outlive verify DIR --json`` (and the ``verify`` part of ``pull --json``)."""

    ok: bool
    dir: str
    manifest_sha256: str
    files: int
    size_bytes: int
    checkpoints_loaded: int
    checkpoints_unchecked: int
    load_skipped: list[str]  # checkpoints proven by SHA-256 only: their loader is not here
    missing: list[str]  # in the manifest, not here
    extra: list[str]  # here, not in the manifest
    problems: list[str]  # one sentence per failing file
    notes: list[str]
    checked_at: float  # seconds since the epoch
    seconds: float  # how long the check took
    results: list[FileResultJson]


@dataclass
class FileResult:
    """What verification found for one path."""

    path: str
    ok: bool
    size: int | None = None
    sha256: str | None = None
    link: str | None = None
    load: str | None = None  # "outlive-ckpt" | "npz" | "npy" | "safetensors" | "torch" | None
    load_ok: bool | None = None  # None: not a checkpoint, or it could not be checked here
    problem: str | None = None
    kind: str = "file"  # "file" | "link" | "missing" | "unreadable" | "other"
    detail: str | None = field(default=None, repr=False)  # why it does not load, or is unread
    # (size, mtime_ns, inode, ctime_ns) of the local file when it was hashed, to reuse a result
    # computed while the pull was still running: a file rsync replaced since is a new inode, one
    # written in place has a new ctime, so a reused hash is always of the bytes there now.
    stamp: tuple[int, int, int, int] | None = field(default=None, repr=False)
    # When the hashing began (ns since the epoch, taken before the stamp): a kept result is
    # trusted later only for a file whose last change came well before (``hash_cache``).
    hashed_at_ns: int | None = field(default=None, repr=False)

    def as_json(self) -> FileResultJson:
        out: FileResultJson = {"path": self.path, "ok": self.ok}
        if self.link is not None:
            out["link"] = self.link
        else:
            out["size"], out["sha256"] = self.size, self.sha256
        out["load"], out["load_ok"] = self.load, self.load_ok
        out["load_check"], out["load_skipped"] = self.load_check, self.load_skipped
        out["problem"] = self.problem
        return out

    @property
    def load_check(self) -> str | None:
        if self.load is None:
            return None
        return {True: "loaded", False: "failed", None: "skipped"}[self.load_ok]

    @property
    def load_skipped(self) -> str | None:
        """Why this checkpoint's load check was skipped (its loader cannot be imported here)."""
        return self.detail if self.load is not None and self.load_ok is None else None


@dataclass
class Report:
    """The verdict on a pulled tree; ``problems`` name every failing file."""

    ok: bool
    root: str
    manifest_sha256: str
    files: list[FileResult]
    missing: list[str]
    extra: list[str]
    problems: list[str]
    notes: list[str]
    checked_at: float
    seconds: float

    def as_json(self) -> ReportJson:
        loads = [f for f in self.files if f.load is not None]
        return {
            "ok": self.ok,
            "dir": self.root,
            "manifest_sha256": self.manifest_sha256,
            "files": len(self.files),
            "size_bytes": sum(f.size or 0 for f in self.files),
            "checkpoints_loaded": sum(1 for f in loads if f.load_ok),
            "checkpoints_unchecked": sum(1 for f in loads if f.load_ok is None),
            "load_skipped": [f.path for f in loads if f.load_ok is None],
            "missing": self.missing,
            "extra": self.extra,
            "problems": self.problems,
            "notes": self.notes,
            "checked_at": self.checked_at,
            "seconds": round(self.seconds, 3),
            "results": [f.as_json() for f in self.files],
        }


_buffers = threading.local()  # one hashing buffer per thread, made once


def _sha256_of(path: Path) -> str:
    """SHA-256 of a file, read into one buffer per thread (a fresh 1 MiB object per block is
    an mmap and its page faults each time: 12-25 ms more CPU for the 128 MiB pull bench tree
    here; one zeroed per file cost 15 us of each 16 KiB file's 45)."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(HASH_BLOCK_BYTES)
    h = hashlib.sha256()
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def observe_file(root: Path, rel: str, *, expect_size: int | None = None) -> FileResult:
    """What is at ``root/rel`` here: kind, size, SHA-256 or link target, and whether it loads.
    With ``expect_size``, a file of another size is not hashed (it cannot match anyway).
    ``ok`` is False only for what fails on its own: unreadable, not a file, does not load."""
    path = root / rel
    began_ns = time.time_ns()
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return FileResult(rel, False, kind="missing", detail="missing here")
    except OSError as exc:
        return FileResult(rel, False, kind="unreadable", detail=f"unreadable ({exc.strerror})")
    if stat.S_ISLNK(info.st_mode):
        return FileResult(rel, True, kind="link", link=os.readlink(path))
    if not stat.S_ISREG(info.st_mode):
        return FileResult(rel, False, kind="other", detail="not a regular file here")
    result = FileResult(rel, True, size=info.st_size, stamp=file_stamp(info), hashed_at_ns=began_ns)
    if expect_size is not None and info.st_size != expect_size:
        return result
    try:
        result.sha256 = _sha256_of(path)
    except OSError as exc:
        return FileResult(rel, False, kind="unreadable", detail=f"unreadable ({exc.strerror})")
    result.load, result.load_ok, result.detail = check_load(path)
    result.ok = result.load_ok is not False
    return result


def judge(entry: Entry, seen: FileResult, *, require_load: bool = False) -> FileResult:
    """Compare what is here with the manifest entry; the verdict names the file. A checkpoint
    whose loader is not installed here passes on its SHA-256 with a note, unless
    ``require_load`` (``--require-load-check``) makes the skipped load check a failure."""
    r = dataclasses.replace(seen, ok=False, problem=None)
    p = entry.path
    if seen.kind in ("missing", "unreadable", "other"):
        r.problem = f"{p}: {seen.detail}"
    elif entry.link is not None:
        if seen.kind != "link":
            r.problem = f"{p}: a regular file here, a symlink on the box"
        elif seen.link != entry.link:
            r.problem = f"{p}: links to {seen.link!r} here, to {entry.link!r} on the box"
        else:
            r.ok = True
    elif seen.kind == "link":
        r.problem = f"{p}: a symlink here, a regular file on the box"
    elif seen.size != entry.size:
        r.problem = f"{p}: {seen.size} bytes here, {entry.size} on the box"
    elif seen.sha256 != entry.sha256:
        here = (seen.sha256 or "?")[:12]
        r.problem = f"{p}: SHA-256 differs (box {str(entry.sha256)[:12]}…, here {here}…)"
    elif seen.load_ok is False:
        r.problem = f"{p}: checkpoint does not load as {seen.load} ({seen.detail})"
    elif seen.load is not None and seen.load_ok is None:
        why = f"{p}: load check skipped: {seen.detail}"
        if require_load:
            r.problem = (
                f"{why}, and --require-load-check needs it loaded; install {seen.load} here "
                "(e.g. `pip install torch`) and verify again"
            )
        else:
            r.ok, r.problem = True, f"{why} (verified by SHA-256 only)"  # a note
    else:
        r.ok = True
    return r


def check_file(root: Path, entry: Entry, *, require_load: bool = False) -> FileResult:
    """Hash (or read the link of) one local file, load it, and judge it against its entry."""
    size = entry.size if entry.link is None else None
    seen = observe_file(root, entry.path, expect_size=size)
    return judge(entry, seen, require_load=require_load)


# ---------------------------------------------------------------------------------------------
# a tree


# What an outlive before session 10 left at the top when killed while writing the proof (it is
# written through ``.outlive/`` now): never data, since box files land only under a root label.
_VERIFIED_TMP_RE = re.compile(r"^\." + re.escape(VERIFIED_NAME) + r"\.tmp-\d+$")


def local_roster(root: Path) -> dict[str, str]:
    """Relative path -> "file" | "link" | "other" for everything under ``root`` except the
    pull's own records (``PULL_VERIFIED.json`` and ``.outlive/`` at the top)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if not prefix:
            dirnames[:] = [d for d in dirnames if d != META_DIR]
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                out[prefix + d] = "link"
        for name in filenames:
            if not prefix and (name == VERIFIED_NAME or _VERIFIED_TMP_RE.match(name)):
                continue  # the proof, or one an older outlive was killed while writing
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            kind = "file" if stat.S_ISREG(mode) else "link" if stat.S_ISLNK(mode) else "other"
            out[prefix + name] = kind
    return out


def reusable(root: Path, known: FileResult | None) -> bool:
    """Whether ``known`` is still true of the file at ``root/known.path``: the same size,
    mtime, inode and ctime as when it was hashed."""
    if known is None or known.stamp is None:
        return False
    try:
        info = os.lstat(root / known.path)
    except OSError:
        return False
    return file_stamp(info) == known.stamp


def file_stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


def verify_tree(
    root: Path,
    manifest: Manifest,
    *,
    known: Mapping[str, FileResult] | None = None,
    workers: int | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    require_load: bool = False,
) -> Report:
    """Check ``root`` against ``manifest``: exact roster, sizes, SHA-256, link targets, and a
    load of every checkpoint. ``known`` holds results computed earlier (while a pull was still
    transferring); one is reused only if the file is unchanged since (size, mtime, inode and
    ctime). With ``require_load``, a checkpoint that could not be load-checked here fails."""
    started = time.monotonic()
    known = known or {}
    roster = local_roster(root)
    # Links to data outside the run's roots were listed, not pulled: nothing to check here.
    gone = {e.path for e in manifest.not_pulled}
    missing = sorted(p for p in manifest.entries if p not in roster and p not in gone)
    extra = sorted(p for p in roster if p not in manifest.entries)
    todo = [e for p, e in manifest.entries.items() if p in roster and p not in gone]
    n = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))

    # What a pull saw while files moved is judged here, on this thread: a task per file on
    # the pool cost 0.06 s of 2,000 small files' proof, for no hashing at all.
    results: list[FileResult] = []
    fresh: list[Entry] = []
    for entry in todo:
        prior = known.get(entry.path)
        if prior is not None and reusable(root, prior):
            results.append(judge(entry, prior, require_load=require_load))
            if on_file is not None:
                on_file(results[-1])
        else:
            fresh.append(entry)
    if fresh:
        with ThreadPoolExecutor(max_workers=n) as pool:
            for result in pool.map(
                lambda entry: check_file(root, entry, require_load=require_load), fresh
            ):
                results.append(result)
                if on_file is not None:
                    on_file(result)
    for path in missing:
        results.append(FileResult(path, False, kind="missing", problem=f"{path}: missing here"))
    results.sort(key=lambda r: r.path)
    problems = [r.problem for r in results if not r.ok and r.problem]
    problems += [f"{p}: extra file, not on the box" for p in extra]
    notes = [r.problem for r in results if r.ok and r.problem]
    notes += [
        f"{e.path}: not pulled, a symlink to {e.outside} outside the run's result roots "
        "(pull --follow-links brings its content)"
        for e in manifest.not_pulled
    ]
    return Report(
        ok=not problems,
        root=str(root),
        manifest_sha256=manifest.sha256,
        files=results,
        missing=missing,
        extra=extra,
        problems=problems,
        notes=notes,
        checked_at=time.time(),
        seconds=time.monotonic() - started,
    )
