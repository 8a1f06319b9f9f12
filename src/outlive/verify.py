"""Prove a pulled tree: it matches its manifest exactly, and every checkpoint in it loads.

"Pulled" is a claim about artifacts, never about a log line (U33). A pulled directory is::

    <dest>/PULL_VERIFIED.json        written only after a verification passed
    <dest>/.outlive/pull.json        which run, target and result roots, which manifest
    <dest>/.outlive/manifests/H.json the box's manifest; its SHA-256 is H (its own name)
    <dest>/ckpt/...                  the run's durable checkpoint directory
    <dest>/out/<path>/...            each declared output path (relative to the workdir)

Verification checks the roster (no file missing, no file extra), each size and SHA-256, each
symlink's target, and loads every checkpoint: outlive ``.ckpt`` files through the Checkpointer
(header, SHA-256 trailer, unpickle), ``.npz`` / ``.npy`` with numpy (no pickles), safetensors
by parsing the header with the standard library (offsets, sizes, no gaps), and torch files with
``torch.load(weights_only=True)`` when torch is installed (otherwise they are checked by hash
only, and the report says so). numpy and torch are imported only when such a file is found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlive.errors import UsageError

__all__ = [
    "MANIFEST_FORMAT",
    "META_DIR",
    "VERIFIED_NAME",
    "Entry",
    "FileResult",
    "Manifest",
    "Report",
    "canonical_bytes",
    "check_file",
    "check_load",
    "check_safetensors",
    "hash_file",
    "invalidate_verified",
    "judge",
    "observe_file",
    "read_pull_info",
    "verify_dir",
    "verify_tree",
    "write_verified",
]

MANIFEST_FORMAT = "outlive-manifest/1"
VERIFIED_FORMAT = "outlive-pull-verified/1"
META_DIR = ".outlive"
VERIFIED_NAME = "PULL_VERIFIED.json"
PULL_INFO = "pull.json"
MANIFESTS_DIR = "manifests"
HASH_BLOCK_BYTES = 1 << 20
MAX_WORKERS = 8
SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DETAIL_CHARS = 300

# Bytes per element of the safetensors dtypes (F4 packs two elements per byte: handled apart).
_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_OUTLIVE_CKPT_MAGIC = b"\x89OLCKPT\n"
_ZIP_MAGIC = b"PK\x03\x04"


def canonical_bytes(
    roots: Iterable[Mapping[str, str]], files: Iterable[Mapping[str, Any]]
) -> bytes:
    """The bytes whose SHA-256 names a manifest; the box agent builds the very same bytes."""
    doc = {
        "format": MANIFEST_FORMAT,
        "roots": [{"label": r["label"], "path": r["path"]} for r in roots],
        "files": [dict(f) for f in files],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Entry:
    """One manifest entry: a regular file (size + SHA-256) or a symlink (its target)."""

    path: str
    size: int | None = None
    sha256: str | None = None
    link: str | None = None

    def as_doc(self) -> dict[str, Any]:
        if self.link is not None:
            return {"path": self.path, "link": self.link}
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """What was on the box under a run's result roots, named by the SHA-256 of its bytes."""

    roots: tuple[tuple[str, str], ...]  # (label, box path)
    entries: Mapping[str, Entry]
    sha256: str

    @classmethod
    def build(cls, roots: Iterable[tuple[str, str]], entries: Iterable[Entry]) -> Manifest:
        roots = tuple(roots)
        by_path = {e.path: e for e in sorted(entries, key=lambda e: e.path)}
        data = _canonical(roots, by_path.values())
        return cls(roots, by_path, hashlib.sha256(data).hexdigest())

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> Manifest:
        """The manifest the agent computed; its hash is recomputed here and must agree."""
        roots = [(str(r["label"]), str(r["path"])) for r in reply["roots"]]
        entries = []
        for f in reply["files"]:
            if "link" in f:
                entries.append(Entry(str(f["path"]), link=str(f["link"])))
            else:
                entries.append(Entry(str(f["path"]), int(f["size"]), str(f["sha256"])))
        manifest = cls.build(roots, entries)
        if reply.get("sha256") and manifest.sha256 != reply["sha256"]:
            raise UsageError(
                f"the box named its manifest {reply['sha256'][:12]}… but its content hashes to "
                f"{manifest.sha256[:12]}… here; the agent and this outlive disagree (a bug)"
            )
        return manifest

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str | None = None) -> Manifest:
        """Parse stored manifest bytes; they must hash to ``name`` when one is given."""
        digest = hashlib.sha256(data).hexdigest()
        if name is not None and digest != name:
            raise UsageError(
                f"manifest {name[:12]}… is damaged: its bytes hash to {digest[:12]}…; pull again"
            )
        try:
            doc = json.loads(data)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            reply = {"roots": doc["roots"], "files": doc["files"]}
            manifest = cls.from_reply(reply)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"manifest {digest[:12]}… cannot be read ({exc}); pull again"
            ) from None
        if manifest.sha256 != digest:
            raise UsageError(f"manifest {digest[:12]}… is not in canonical form; pull again")
        return manifest

    def canonical(self) -> bytes:
        return _canonical(self.roots, self.entries.values())

    @property
    def total_bytes(self) -> int:
        return sum(e.size or 0 for e in self.entries.values())


def _canonical(roots: Iterable[tuple[str, str]], entries: Iterable[Entry]) -> bytes:
    return canonical_bytes(
        [{"label": label, "path": path} for label, path in roots], [e.as_doc() for e in entries]
    )


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
    # (size, mtime_ns) of the local file when it was hashed, to reuse a result computed while
    # the pull was still running.
    stamp: tuple[int, int] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "ok": self.ok}
        if self.link is not None:
            out["link"] = self.link
        else:
            out.update(size=self.size, sha256=self.sha256)
        out.update(load=self.load, load_ok=self.load_ok, problem=self.problem)
        return out


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

    def as_json(self) -> dict[str, Any]:
        loads = [f for f in self.files if f.load is not None]
        return {
            "ok": self.ok,
            "dir": self.root,
            "manifest_sha256": self.manifest_sha256,
            "files": len(self.files),
            "size_bytes": sum(f.size or 0 for f in self.files),
            "checkpoints_loaded": sum(1 for f in loads if f.load_ok),
            "checkpoints_unchecked": sum(1 for f in loads if f.load_ok is None),
            "missing": self.missing,
            "extra": self.extra,
            "problems": self.problems,
            "notes": self.notes,
            "checked_at": self.checked_at,
            "seconds": round(self.seconds, 3),
            "results": [f.as_json() for f in self.files],
        }


# ---------------------------------------------------------------------------------------------
# one file


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Streamed SHA-256 (bounded memory for multi-GB files) and the number of bytes read."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(HASH_BLOCK_BYTES), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _clip(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def loader_kind(path: Path) -> str | None:
    """Which loader proves this file, by its name (and first bytes for ``.ckpt``)."""
    name = path.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith((".pt", ".pth")) or (
        name.startswith("pytorch_model") and name.endswith(".bin")
    ):
        return "torch"
    if name.endswith(".ckpt"):
        # A Lightning ``.ckpt`` is a torch file; ours starts with the outlive magic.
        try:
            with open(path, "rb") as f:
                head = f.read(len(_OUTLIVE_CKPT_MAGIC))
        except OSError:
            return "outlive-ckpt"
        return "outlive-ckpt" if head == _OUTLIVE_CKPT_MAGIC else "torch"
    return None


def check_load(path: Path) -> tuple[str | None, bool | None, str | None]:
    """(loader, loaded?, detail). ``loaded`` is None when the file is not a checkpoint or its
    loader is not installed here; False names why it does not load."""
    kind = loader_kind(path)
    if kind is None:
        return None, None, None
    try:
        if kind == "outlive-ckpt":
            _load_outlive_ckpt(path)
        elif kind == "npz":
            _load_npz(path)
        elif kind == "npy":
            _load_npy(path)
        elif kind == "safetensors":
            problem = check_safetensors(path)
            if problem is not None:
                return kind, False, problem
        elif not _load_torch(path):
            return kind, None, "torch is not installed here, so it was checked by SHA-256 only"
    except Exception as exc:
        return kind, False, _clip(exc)
    return kind, True, None


def _load_outlive_ckpt(path: Path) -> None:
    # A .ckpt holds a pickle: loading it runs what the job put in it, exactly as the job's own
    # resume does. The Checkpointer checks the header and SHA-256 before it unpickles.
    import tempfile

    from outlive.ckpt import fmt

    step = fmt.parse_checkpoint_name(path.name)
    if step is not None:
        _load_step(path.parent, step)
        return
    # Renamed by the user: read its step from the verified header, and load it through a
    # step-named link so the Checkpointer's own loader does the work.
    step, _ = fmt.verify(path.read_bytes())
    with tempfile.TemporaryDirectory(prefix="outlive-verify-") as tmp:
        (Path(tmp) / fmt.checkpoint_name(step)).symlink_to(path.absolute())
        _load_step(Path(tmp), step)


def _load_step(directory: Path, step: int) -> None:
    from outlive.ckpt import Checkpointer

    ckpt = Checkpointer(directory, keep_last=None, handle_signals=False)
    try:
        ckpt.load(step)
    finally:
        ckpt.close()


def _load_npz(path: Path) -> None:
    import numpy as np

    # Reading every member in full makes zipfile check each CRC; no pickles are allowed. The
    # file is opened here so that a broken archive cannot leak numpy's handle.
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
        for key in archive.files:
            archive[key]


def _load_npy(path: Path) -> None:
    import numpy as np

    # The header must parse and the data after it must be exactly shape x itemsize bytes,
    # checked without reading a multi-GB array into memory.
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise ValueError("holds Python objects (a pickle), which are not loaded")
        count = 1
        for d in shape:
            count *= int(d)
        want = count * dtype.itemsize
        have = os.fstat(f.fileno()).st_size - f.tell()
        if have != want:
            raise ValueError(f"{have} data bytes for {dtype} {tuple(shape)} (expected {want})")


def _load_torch(path: Path) -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    torch.load(str(path), map_location="cpu", weights_only=True)
    return True


def check_safetensors(path: Path) -> str | None:
    """Parse a safetensors file with the standard library: an 8-byte little-endian header
    length, a JSON header, then the data. Every tensor's offsets must lie in the data, its size
    must match dtype x shape, and the tensors must tile the data with no gap or overlap.
    Returns None when it holds, else why not."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes is too short for a safetensors header"
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > SAFETENSORS_MAX_HEADER_BYTES:
            return f"the header claims {n} bytes but the file holds {size - 8} after it"
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"the header is not JSON ({exc})"
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    data_len = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "__metadata__ must map strings to strings"
            continue
        if not isinstance(info, dict):
            return f"tensor {name!r}: its entry is not an object"
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if (
            not isinstance(shape, list)
            or not all(_is_count(d) for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
        ):
            return f"tensor {name!r}: shape or data_offsets malformed"
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            return (
                f"tensor {name!r}: data_offsets [{begin}, {end}] outside the {data_len} data bytes"
            )
        count = 1
        for d in shape:
            count *= d
        want: int | None
        if dtype == "F4":
            want = (count + 1) // 2
        else:
            per = _SAFETENSORS_DTYPE_BYTES.get(str(dtype))
            want = None if per is None else count * per
        if want is not None and end - begin != want:
            return f"tensor {name!r}: {end - begin} bytes for {dtype} {shape} (expected {want})"
        spans.append((begin, end, name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            what = "a gap before" if begin > pos else "an overlap at"
            return f"{what} tensor {name!r} (offset {begin}, expected {pos})"
        pos = end
    if pos != data_len:
        return f"{data_len - pos} bytes after the last tensor belong to none"
    return None


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def observe_file(root: Path, rel: str, *, expect_size: int | None = None) -> FileResult:
    """What is at ``root/rel`` here: kind, size, SHA-256 or link target, and whether it loads.
    With ``expect_size``, a file of another size is not hashed (it cannot match anyway).
    ``ok`` is False only for what fails on its own: unreadable, not a file, does not load."""
    path = root / rel
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
    stamp = (info.st_size, info.st_mtime_ns)
    result = FileResult(rel, True, size=info.st_size, stamp=stamp)
    if expect_size is not None and info.st_size != expect_size:
        return result
    try:
        result.sha256, _ = hash_file(path)
    except OSError as exc:
        return FileResult(rel, False, kind="unreadable", detail=f"unreadable ({exc.strerror})")
    result.load, result.load_ok, result.detail = check_load(path)
    result.ok = result.load_ok is not False
    return result


def judge(entry: Entry, seen: FileResult) -> FileResult:
    """Compare what is here with the manifest entry; the verdict names the file."""
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
    else:
        r.ok = True
        if seen.load is not None and seen.load_ok is None:
            r.problem = f"{p}: {seen.detail}"  # a note: loaded by nothing here
    return r


def check_file(root: Path, entry: Entry) -> FileResult:
    """Hash (or read the link of) one local file, load it, and judge it against its entry."""
    size = entry.size if entry.link is None else None
    return judge(entry, observe_file(root, entry.path, expect_size=size))


# ---------------------------------------------------------------------------------------------
# a tree


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
            if not prefix and name == VERIFIED_NAME:
                continue
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            kind = "file" if stat.S_ISREG(mode) else "link" if stat.S_ISLNK(mode) else "other"
            out[prefix + name] = kind
    return out


def _reusable(root: Path, known: FileResult | None) -> bool:
    if known is None or known.stamp is None:
        return False
    try:
        info = os.lstat(root / known.path)
    except OSError:
        return False
    return (info.st_size, info.st_mtime_ns) == known.stamp


def verify_tree(
    root: Path,
    manifest: Manifest,
    *,
    known: Mapping[str, FileResult] | None = None,
    workers: int | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> Report:
    """Check ``root`` against ``manifest``: exact roster, sizes, SHA-256, link targets, and a
    load of every checkpoint. ``known`` holds results computed earlier (while a pull was still
    transferring); one is reused only if the file's size and mtime are unchanged since."""
    started = time.monotonic()
    known = known or {}
    roster = local_roster(root)
    missing = sorted(p for p in manifest.entries if p not in roster)
    extra = sorted(p for p in roster if p not in manifest.entries)
    todo = [e for p, e in manifest.entries.items() if p in roster]
    n = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))

    def one(entry: Entry) -> FileResult:
        prior = known.get(entry.path)
        if prior is not None and _reusable(root, prior):
            return judge(entry, prior)
        return check_file(root, entry)

    results: list[FileResult] = []
    with ThreadPoolExecutor(max_workers=n) as pool:
        for result in pool.map(one, todo):
            results.append(result)
            if on_file is not None:
                on_file(result)
    for path in missing:
        results.append(FileResult(path, False, kind="missing", problem=f"{path}: missing here"))
    results.sort(key=lambda r: r.path)
    problems = [r.problem for r in results if not r.ok and r.problem]
    problems += [f"{p}: extra file, not on the box" for p in extra]
    notes = [r.problem for r in results if r.ok and r.problem]
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


# ---------------------------------------------------------------------------------------------
# a pulled directory and its records


def meta_dir(dest: Path) -> Path:
    return dest / META_DIR


def manifest_path(dest: Path, digest: str) -> Path:
    return meta_dir(dest) / MANIFESTS_DIR / f"{digest}.json"


def store_manifest(dest: Path, manifest: Manifest) -> Path:
    """Keep the manifest next to the data, read-only, named by its own hash (never rewritten)."""
    path = manifest_path(dest, manifest.sha256)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(manifest.canonical())
    tmp.chmod(0o444)
    os.replace(tmp, path)
    return path


def load_manifest(dest: Path, digest: str) -> Manifest:
    path = manifest_path(dest, digest)
    try:
        data = path.read_bytes()
    except OSError:
        raise UsageError(f"{path} is missing; pull the run again") from None
    return Manifest.from_bytes(data, name=digest)


def read_pull_info(dest: Path) -> dict[str, Any]:
    """The pull record in ``dest/.outlive/pull.json``; UsageError if DIR is no pulled dir."""
    path = meta_dir(dest) / PULL_INFO
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{dest} is not a directory made by `outlive pull` (no {META_DIR}/{PULL_INFO}); "
            "give the directory that pull printed"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read ({exc}); pull the run again") from None
    if not isinstance(info, dict) or not info.get("manifest_sha256"):
        raise UsageError(f"{path} names no manifest: that pull never finished; pull again")
    return info


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_verified(dest: Path, report: Report, info: Mapping[str, Any]) -> Path:
    """``PULL_VERIFIED.json``: the manifest hash, every file's result and when; only for a
    report that passed."""
    if not report.ok:
        raise UsageError("refusing to write PULL_VERIFIED.json for a failed verification")
    path = dest / VERIFIED_NAME
    write_json_atomic(
        path,
        {
            "format": VERIFIED_FORMAT,
            "manifest_sha256": report.manifest_sha256,
            "run_id": info.get("run_id"),
            "name": info.get("name"),
            "target": info.get("target"),
            "roots": info.get("roots"),
            "verified_at": report.checked_at,
            "verified_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.checked_at)),
            "files": [f.as_json() for f in report.files],
        },
    )
    return path


def invalidate_verified(dest: Path, why: str) -> Path | None:
    """Move a ``PULL_VERIFIED.json`` that no longer holds into ``.outlive/`` (kept, not
    deleted), so nothing, the gate included, can mistake the tree for a verified one."""
    path = dest / VERIFIED_NAME
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = meta_dir(dest) / "previous" / f"PULL_VERIFIED.{stamp}.{why}.json"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, aside)
    return aside


def read_verified(dest: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((dest / VERIFIED_NAME).read_text())
        if isinstance(data, dict):
            return data
    return None


def verify_dir(dest: Path, *, record: bool = True) -> Report:
    """``outlive verify DIR``: check a pulled directory against its manifest again. With
    ``record``, a pass (re)writes PULL_VERIFIED.json and a failure moves it aside."""
    dest = Path(dest)
    if not dest.is_dir():
        raise UsageError(f"{dest} is not a directory; give the directory that pull printed")
    info = read_pull_info(dest)
    manifest = load_manifest(dest, str(info["manifest_sha256"]))
    report = verify_tree(dest, manifest)
    if record:
        if report.ok:
            write_verified(dest, report, info)
        else:
            invalidate_verified(dest, "failed")
    return report
