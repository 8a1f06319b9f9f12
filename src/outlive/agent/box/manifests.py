"""Pull manifests (issue 6: pull, verify and the teardown gate).

Every file under a run's result roots with its size and SHA-256, in one round trip. The
manifest is canonical JSON (sorted keys, no spaces, ASCII) named by its own SHA-256, so the
same files under the same roots always give the same name, and the client recomputes the hash
from the reply to prove both sides agree. Hashing is streamed in 1 MiB blocks (bounded memory
for multi-GB checkpoints) on a few threads (hashlib releases the GIL on large updates).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time

from outlive import wire

from .common import AgentError, Rec, expand
from .procfs import boot_id, thread_count
from .records import write_bytes_atomic
from .runs import probe_one

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Dict, FrozenSet, List, Tuple

MANIFEST_FORMAT = "outlive-manifest/1"
# The box hashes while the pull's transfer runs: on every core but one, which sshd's cipher and
# rsync's sender need (a 2-core box hashing on both slowed a 128 MiB pull over the testbed's
# free link by 14-36 ms: 0.600 -> 0.564 s with one hashing thread, 20 interleaved rounds).
MANIFEST_MAX_WORKERS = 8
# Read to estimate how well a file compresses (U15). 16 KiB at zlib level 1 costs 0.13 ms per
# file here, 64 KiB cost 1.1 ms (a roster of 24 files: 3 ms instead of 26, on the critical path).
# Incompressible bytes cost deflate most (0.25 ms per 16 KiB of random bytes on a 2-vCPU VM):
# the first 4 KiB go first, and where they do not shrink at all the rest is not tried.
MANIFEST_SAMPLE_BYTES = 16384
MANIFEST_SAMPLE_MIN_BYTES = 4096
SAMPLE_FIRST_BYTES = 4096
# The client judges each top-level directory of a root (and the root's other files) as a whole,
# by its samples weighted by size: the biggest files of each say it. Sampling all 2,000 files of
# a tree took the roster 0.27 s instead of 0.015, before the transfer's first byte.
SAMPLES_PER_GROUP = 32
SAMPLE_INCOMPRESSIBLE_RATIO = 0.97  # far above the -z threshold (transfer.COMPRESS_BELOW_RATIO)
HASH_BLOCK_BYTES = 1 << 20
GONE_CHECK_BLOCKS = 64  # every 64 MiB hashed (~35 ms here), one poll(2) of the agent's output
# Temp names of atomic writers that are still in flight (``.NAME.tmp-PID[-TOKEN]``): outlive's
# Checkpointer and the example's final.npz write these and rename them into place (U6).
_INFLIGHT_TMP_RE = re.compile(r"^\..+\.tmp-\d+(-[0-9a-f]+)?$")
# What the box hashed, kept in the run dir (wire.HASH_CACHE_NAME) so that the next pull hashes
# only what changed: a file's hash is reused while its device, inode, size, mtime and ctime are
# those it had when it was hashed (a file rewritten in place gets a new ctime, one replaced a
# new inode; ctime cannot be set by a user), and only where it settled (wire.RACY_MARGIN_NS).
# `down` never reuses: its gate re-reads every byte.
HASH_CACHE_FORMAT = "outlive-hash-cache/1"


def manifest_canonical(roots: List[Rec], files: List[Rec]) -> bytes:
    """The bytes a manifest's name is the SHA-256 of; the client builds the same bytes."""
    doc = {"format": MANIFEST_FORMAT, "roots": roots, "files": files}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label or label.startswith("/"):
        raise AgentError(f"result root label {label!r} must be a relative path")
    if any(part in ("", ".", "..") for part in label.split("/")):
        raise AgentError(f"result root label {label!r} must not hold '.', '..' or '//'")
    return label


def _zsample(path: str) -> float | None:
    """Compressed / raw size of the file's first 16 KiB at zlib level 1 (None: too small); of
    its first 4 KiB alone where those do not shrink (random bytes, packed tensors)."""
    import zlib

    try:
        with open(path, "rb") as f:
            head = f.read(MANIFEST_SAMPLE_BYTES)
    except OSError:
        return None
    if len(head) < MANIFEST_SAMPLE_MIN_BYTES:
        return None
    first = head[:SAMPLE_FIRST_BYTES]
    ratio = len(zlib.compress(first, 1)) / len(first)
    if ratio < SAMPLE_INCOMPRESSIBLE_RATIO and len(head) > len(first):
        ratio = len(zlib.compress(head, 1)) / len(head)
    return round(ratio, 3)


def _sampled(regular: List[Rec]) -> List[Rec]:
    """The files whose compressibility is sampled: the SAMPLES_PER_GROUP biggest of each
    top-level directory of a root, and of the root's other files (what the client compresses
    or not as one)."""
    groups: Dict[Tuple[str, str], List[Rec]] = {}
    for entry in regular:
        rel = str(entry["rel"])
        key = (str(entry["root"]), rel.split("/", 1)[0] if "/" in rel else "")
        groups.setdefault(key, []).append(entry)
    picked: List[Rec] = []
    for members in groups.values():
        members.sort(key=lambda e: (-int(e["size"]), str(e["rel"])))
        picked.extend(members[:SAMPLES_PER_GROUP])
    return picked


def client_gone() -> bool:
    """Whether the client stopped listening: the agent's output (a pipe or socket to sshd,
    kubectl or the local client) reports an error or hang-up once its reader is gone. A file
    or terminal never does."""
    import select

    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(1, select.POLLOUT)
    try:
        events = poller.poll(0)
    except OSError:
        return False
    return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in events)


class ClientGone(AgentError):
    """The client closed the channel while the box hashed for it (a pull stopped)."""

    def __init__(self) -> None:
        super().__init__("the client is gone: hashing stopped", kind="client_gone")


def _sha256_counted(path: str) -> Tuple[str, int]:
    """SHA-256 and the number of bytes actually read (a file still being written shows here),
    streamed in 1 MiB blocks read into one buffer (a new 1 MiB object per block costs page
    faults: ~8 % of the hash here). A client gone is noticed every GONE_CHECK_BLOCKS blocks:
    a pull stopped does not leave the box hashing a 100 GB file for it."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    buf = bytearray(HASH_BLOCK_BYTES)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        blocks = 0
        while True:
            got = f.readinto(view)
            if not got:
                break
            h.update(view[:got])
            n += got
            blocks += 1
            if blocks % GONE_CHECK_BLOCKS == 0 and client_gone():
                raise ClientGone()
    return h.hexdigest(), n


def _cores() -> int:
    """The cores this agent may use: its affinity (a container's cpuset), and no more than a
    cgroup CPU quota allows (a pod that sees the host's 128 cores and may use 8)."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = thread_count()
    return min(cores, quota) if quota else cores


def _hash_all(paths: List[str], workers: int) -> List[Tuple[str, int] | None]:
    """``_sha256_counted`` of each path (None: vanished or unreadable), on a few threads
    (hashlib releases the GIL on large updates). Plain threads, not ``concurrent.futures``,
    whose import (logging, queue) costs the box ~10 ms of CPU on every pull."""
    import threading

    out: List[Tuple[str, int] | None] = [None] * len(paths)
    todo = iter(range(len(paths)))
    lock = threading.Lock()
    failed: List[BaseException] = []

    def work() -> None:
        while not failed:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            if client_gone():
                failed.append(ClientGone())
                return
            try:
                out[i] = _sha256_counted(paths[i])
            except OSError:
                out[i] = None
            except BaseException as exc:  # re-raised below, as a pool would
                failed.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, workers) - 1)]
    for t in threads:
        t.start()
    work()  # this thread hashes too
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return out


def _inside(real: str, reals: List[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in reals)


def _check_name(name: str) -> str:
    """One component of a listed path: never empty, '.', '..', or holding '/' or NUL."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise AgentError(f"refusing to list the unsafe name {name!r}")
    return name


def _list_root(
    label: str,
    root: str,
    entries: List[Rec],
    skipped: List[str],
    reals: List[str],
    follow: bool,
) -> str:
    """Append the entries under one result root; return what the root is on the box.

    The root itself is followed when it is a symlink (a durable dir is often a link to a
    volume). A symlink inside it is never skipped silently: a relative link that stays in its
    root and resolves inside the run's roots (``latest -> step_100``), a dangling link, or a
    link back to a directory being listed is kept as a link (what it points at is listed at its
    own path); any other link whose target lies inside the run's roots (``reals``), or anywhere
    when ``follow``, is listed as its target's content under the link's path; the rest are
    listed with ``outside`` (their real box path): not pulled, and the gate counts them as
    lost. Each entry carries ``rel``, its path below the root (empty for a single-file root)."""
    import posixpath
    import stat as st

    def name_of(rel: str) -> str:
        return label + "/" + rel if rel else label

    def add_file(rel: str, path: str, info: os.stat_result) -> None:
        entries.append(
            {
                "path": name_of(rel),
                "root": label,
                "rel": rel,
                "abs": path,
                "stamp": _stamp(info),
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
            }
        )

    def add_link(rel: str, path: str, target: str, outside: str | None = None) -> None:
        entry: Rec = {"path": name_of(rel), "root": label, "rel": rel, "abs": path, "link": target}
        if outside is not None:
            entry["outside"] = outside
        entries.append(entry)

    def link(rel: str, path: str, chain: FrozenSet[str]) -> None:
        try:
            target = os.readlink(path)
        except OSError:
            skipped.append(name_of(rel) + " (vanished while listed)")
            return
        real = os.path.realpath(path)
        try:
            info = os.stat(path)
        except OSError:
            add_link(rel, path, target)  # dangling: nothing behind it to lose
            return
        inside = _inside(real, reals)
        if st.S_ISDIR(info.st_mode) and real in chain:
            add_link(rel, path, target)  # back to a directory being listed: listed already
            return
        lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if (
            inside
            and not target.startswith("/")
            and lexical != ".."
            and not lexical.startswith("../")
        ):
            add_link(rel, path, target)  # resolves to content listed at its own path
            return
        if not (inside or follow):
            add_link(rel, path, target, outside=real)
            return
        if st.S_ISREG(info.st_mode):
            add_file(rel, path, info)
        elif st.S_ISDIR(info.st_mode):
            walk(path, rel + "/", chain | {real})
        else:
            skipped.append(name_of(rel) + " (a symlink to neither a regular file nor a directory)")

    def walk(directory: str, prefix: str, chain: FrozenSet[str]) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            skipped.append(name_of(prefix.rstrip("/")) + f" (unreadable: {exc.strerror})")
            return
        for name in names:
            rel = prefix + _check_name(name)
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                skipped.append(name_of(rel) + " (vanished while listed)")
                continue
            if st.S_ISLNK(info.st_mode):
                link(rel, path, chain)
            elif st.S_ISDIR(info.st_mode):
                walk(path, rel + "/", chain | {os.path.realpath(path)})
            elif st.S_ISREG(info.st_mode):
                if not _INFLIGHT_TMP_RE.match(name):
                    add_file(rel, path, info)
            else:
                skipped.append(name_of(rel) + " (not a regular file, directory or symlink)")

    if os.path.isfile(root):
        try:
            add_file("", root, os.stat(root))
        except OSError:
            skipped.append(label + " (vanished while listed)")
        return "file"
    if not os.path.isdir(root):
        return "missing"
    walk(root, "", frozenset({os.path.realpath(root)}))
    return "dir"


def _stamp(info: os.stat_result) -> List[int]:
    """What says a file is the one that was hashed: device, inode, size, mtime and ctime."""
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _settled(stamp: List[int], hashed_at_ns: int) -> bool:
    """Whether the file's last change came wire.RACY_MARGIN_NS before its hashing began."""
    return max(stamp[3], stamp[4]) < hashed_at_ns - wire.RACY_MARGIN_NS


def _cache_path(spec: Rec) -> str | None:
    store = spec.get("store_dir")
    return os.path.join(expand(str(store)), wire.HASH_CACHE_NAME) if store else None


def _load_cache(path: str | None) -> Dict[str, List[object]]:
    """abs path -> [dev, ino, size, mtime_ns, ctime_ns, sha256, hashed_at_ns]; anything
    unreadable, torn or of another format is no cache at all (every file is hashed)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != HASH_CACHE_FORMAT:
        return {}
    files = doc.get("files")
    return files if isinstance(files, dict) else {}


def _cached_hash(row: object, stamp: List[int]) -> Tuple[str, int] | None:
    """The cached (sha256, hashed_at_ns) of a file whose stamp is still ``stamp``."""
    if not isinstance(row, list) or len(row) != 7 or row[:5] != stamp:
        return None
    sha, at = row[5], row[6]
    if not isinstance(sha, str) or len(sha) != 64 or not isinstance(at, int):
        return None
    return (sha, at) if _settled(stamp, at) else None


def _save_cache(path: str, files: Dict[str, List[object]]) -> str | None:
    """Replace the cache whole (a temp file renamed: never torn); no fsync, since a cache lost
    to a power cut costs one full hashing. The reason it could not be written, else None."""
    data = json.dumps({"format": HASH_CACHE_FORMAT, "files": files}, separators=(",", ":"))
    tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return f"{exc.strerror or exc} ({path})"
    return None


def _hash_entries(
    spec: Rec, roots: List[str], regular: List[Rec], skipped: List[str], unstable: List[str]
) -> Rec:
    """Give every regular entry its ``sha256`` (an entry that vanished or cannot be read is
    marked ``gone`` and named in ``skipped``): from the run's hash cache where
    ``spec["reuse"]`` and the file is unchanged since it was hashed, else read whole. The cache
    is then rewritten: what holds now under these ``roots``, and what it had elsewhere (another
    pull's ``--output`` roots). Returns the counts the reply carries."""
    cache_path = _cache_path(spec)
    loaded = _load_cache(cache_path)
    keep: Dict[str, List[object]] = {
        path: row
        for path, row in loaded.items()
        if not any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)
    }
    cached = loaded if spec.get("reuse") else {}
    todo: List[Rec] = []
    reused_bytes = 0
    for entry in regular:
        hit = _cached_hash(cached.get(entry["abs"]), entry["stamp"])
        if hit is None:
            todo.append(entry)
            continue
        entry["sha256"] = hit[0]
        reused_bytes += int(entry["size"])
        keep[entry["abs"]] = [*entry["stamp"], hit[0], hit[1]]
    workers = max(1, min(MANIFEST_MAX_WORKERS, _cores() - 1, len(todo)))
    hashed_at_ns = time.time_ns()
    hashes = _hash_all([e["abs"] for e in todo], workers)
    for i, entry in enumerate(todo):
        got = hashes[i]
        if got is None:
            skipped.append(entry["path"] + " (vanished or unreadable while hashed)")
            entry["gone"] = True
            continue
        entry["sha256"], read = got
        if read != entry["size"]:
            unstable.append(entry["path"])  # written to while we read it
            entry["size"] = read
            continue
        try:
            after = _stamp(os.stat(entry["abs"]))
        except OSError:
            continue
        if after == entry["stamp"] and _settled(after, hashed_at_ns):
            keep[entry["abs"]] = [*after, entry["sha256"], hashed_at_ns]
    out: Rec = {"reused_files": len(regular) - len(todo), "reused_bytes": reused_bytes}
    if cache_path is not None and keep != loaded:
        error = _save_cache(cache_path, keep)
        if error is not None:
            out["hash_cache_error"] = error
    return out


def _store_manifest(store_dir: str, digest: str, data: bytes) -> str:
    """Write the manifest once as ``<store_dir>/manifests/<sha256>.json``, read-only."""
    directory = os.path.join(expand(store_dir), wire.MANIFESTS_DIRNAME)
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, digest + ".json")
    if os.path.exists(final):
        return final  # same name, same bytes: it is never rewritten
    write_bytes_atomic(final, data, 0o444)  # whole or not at all: a full disk is an error
    return final


def build_manifest(spec: Rec) -> Rec:
    """One manifest: ``roots`` [{label, path}], ``hash`` (else a cheap roster with sizes),
    ``sample`` (compressibility per file), ``store_dir`` (keep the manifest there, if it
    fits), ``follow_links`` (list the content behind every symlink, wherever it points)."""
    started = time.time()
    roots: List[Rec] = []
    described: List[Rec] = []
    entries: List[Rec] = []
    skipped: List[str] = []
    labels: set[str] = set()
    raws = list(spec.get("roots") or [])
    paths = [expand(str(raw.get("path") or "")) for raw in raws]
    reals = [os.path.realpath(p) for p in paths if os.path.exists(p)]
    follow = bool(spec.get("follow_links"))
    for i, raw in enumerate(raws):
        path = paths[i]
        label = _check_label(raw.get("label"))
        for other in labels:
            if label == other or label.startswith(other + "/") or other.startswith(label + "/"):
                raise AgentError(f"result roots {other!r} and {label!r} overlap")
        labels.add(label)
        kind = _list_root(label, path, entries, skipped, reals, follow)
        roots.append({"label": label, "path": path})
        described.append(
            {"label": label, "path": path, "real": os.path.realpath(path), "kind": kind}
        )
    entries.sort(key=lambda e: e["path"])
    regular = [e for e in entries if "size" in e]
    unstable: List[str] = []
    reuse: Rec = {}
    if spec.get("hash"):
        reuse = _hash_entries(spec, paths, regular, skipped, unstable)
        entries = [e for e in entries if not e.get("gone")]
    if spec.get("sample"):
        for entry in _sampled(regular):
            entry["zratio"] = _zsample(entry["abs"])
    out: Rec = {
        "roots": described,
        "skipped": skipped,
        "unstable": unstable,
        "files": [],
        "total_bytes": sum(int(e.get("size", 0)) for e in entries),
        "sha256": None,
        "stored": None,
        **reuse,
    }
    canonical: List[Rec] = []
    for e in entries:
        if "link" in e and "outside" in e:
            canonical.append({"path": e["path"], "link": e["link"], "outside": e["outside"]})
        elif "link" in e:
            canonical.append({"path": e["path"], "link": e["link"]})
        elif spec.get("hash"):
            canonical.append({"path": e["path"], "size": e["size"], "sha256": e["sha256"]})
        out["files"].append({k: v for k, v in e.items() if k not in ("abs", "stamp")})
    if spec.get("hash"):
        data = manifest_canonical(roots, canonical)
        import hashlib

        out["sha256"] = hashlib.sha256(data).hexdigest()
        if spec.get("store_dir"):
            # The reply carries the manifest inline (roots + files, named by its hash, which
            # the client recomputes), so a full disk under the run dir loses only this copy.
            try:
                out["stored"] = _store_manifest(str(spec["store_dir"]), out["sha256"], data)
            except (OSError, AgentError) as exc:  # a full disk: the reply carries it inline
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                out["store_error"] = f"{why} ({spec['store_dir']})"
    out["seconds"] = round(time.time() - started, 3)
    return out


def verb_manifest(req: Rec) -> Rec:
    """Manifests of several result-root sets plus the probe of some runs, in one round trip
    (``outlive pull`` asks for one set, ``outlive down`` for every run on the target)."""
    now = time.time()
    boot_now = boot_id()
    return {
        "manifests": [build_manifest(s) for s in req.get("sets") or []],
        "probes": [
            probe_one(os.path.expanduser(str(d)), boot_now, now)
            for d in req.get("probe_run_dirs") or []
        ],
        "hostname": os.uname().nodename if hasattr(os, "uname") else None,
        "now": now,
    }
