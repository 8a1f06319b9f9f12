"""Pull manifests (issue 6: pull, verify and the teardown gate).

Every file under a run's result roots with its size and SHA-256, in one round trip. The
manifest is canonical JSON (sorted keys, no spaces, ASCII) named by its own SHA-256, so the
same files under the same roots always give the same name, and the client recomputes the hash
from the reply to prove both sides agree. Hashing is streamed in 1 MiB blocks (bounded memory
for multi-GB checkpoints) on a few threads (hashlib releases the GIL on large updates).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import List, Tuple

from outlive import wire

from .common import AgentError, Rec, expand
from .deploy import sha256_counted
from .procfs import boot_id
from .records import write_bytes_atomic
from .runs import probe_one

MANIFEST_FORMAT = "outlive-manifest/1"
MANIFEST_MAX_WORKERS = 8
MANIFEST_SAMPLE_BYTES = 65536  # read to estimate how well a file compresses (U15)
MANIFEST_SAMPLE_MIN_BYTES = 4096
# Temp names of atomic writers that are still in flight (``.NAME.tmp-PID[-TOKEN]``): outlive's
# Checkpointer and the example's final.npz write these and rename them into place (U6).
_INFLIGHT_TMP_RE = re.compile(r"^\..+\.tmp-\d+(-[0-9a-f]+)?$")


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
    """Compressed / raw size of the file's first 64 KiB at zlib level 1 (None: too small)."""
    import zlib

    try:
        with open(path, "rb") as f:
            head = f.read(MANIFEST_SAMPLE_BYTES)
    except OSError:
        return None
    if len(head) < MANIFEST_SAMPLE_MIN_BYTES:
        return None
    return round(len(zlib.compress(head, 1)) / len(head), 3)


def _list_root(label: str, root: str, entries: List[Rec], skipped: List[str]) -> str:
    """Append the entries under one result root; return what the root is on the box.

    The root itself is followed when it is a symlink (a durable dir is often a link to a
    volume); links inside it are listed as links, never followed. Each entry carries ``rel``,
    its path below the root (empty for a root that is a single file)."""
    import stat as st

    def add(rel: str, path: str) -> None:
        name = label + "/" + rel if rel else label
        try:
            info = os.lstat(path) if rel else os.stat(path)
        except OSError:
            skipped.append(name + " (vanished while listed)")
            return
        entry: Rec = {"path": name, "root": label, "rel": rel, "abs": path}
        if st.S_ISLNK(info.st_mode):
            entry["link"] = os.readlink(path)
        elif st.S_ISREG(info.st_mode):
            entry.update(size=info.st_size, mtime_ns=info.st_mtime_ns)
        else:
            skipped.append(name + " (not a regular file, directory or symlink)")
            return
        entries.append(entry)

    if os.path.isfile(root):
        add("", root)
        return "file"
    if not os.path.isdir(root):
        return "missing"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                add(prefix + d, os.path.join(dirpath, d))  # os.walk does not enter it
        for name in sorted(filenames):
            if not _INFLIGHT_TMP_RE.match(name):
                add(prefix + name, os.path.join(dirpath, name))
    return "dir"


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
    ``sample`` (compressibility per file), ``store_dir`` (keep the manifest there)."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.time()
    roots: List[Rec] = []
    described: List[Rec] = []
    entries: List[Rec] = []
    skipped: List[str] = []
    labels: set[str] = set()
    for raw in spec.get("roots") or []:
        label = _check_label(raw.get("label"))
        for other in labels:
            if label == other or label.startswith(other + "/") or other.startswith(label + "/"):
                raise AgentError(f"result roots {other!r} and {label!r} overlap")
        labels.add(label)
        path = expand(str(raw.get("path") or ""))
        kind = _list_root(label, path, entries, skipped)
        roots.append({"label": label, "path": path})
        described.append(
            {"label": label, "path": path, "real": os.path.realpath(path), "kind": kind}
        )
    entries.sort(key=lambda e: e["path"])
    regular = [e for e in entries if "size" in e]
    unstable: List[str] = []
    if spec.get("hash"):
        workers = max(1, min(MANIFEST_MAX_WORKERS, os.cpu_count() or 1, len(regular)))

        def one(entry: Rec) -> tuple[Rec, Tuple[str, int] | None]:
            try:
                return entry, sha256_counted(entry["abs"])
            except OSError:
                return entry, None

        kept: List[Rec] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for entry, got in pool.map(one, regular):
                if got is None:
                    skipped.append(entry["path"] + " (vanished or unreadable while hashed)")
                    continue
                entry["sha256"], read = got
                if read != entry["size"]:
                    unstable.append(entry["path"])  # written to while we read it
                    entry["size"] = read
                kept.append(entry)
        drop = {id(e) for e in regular} - {id(e) for e in kept}
        entries = [e for e in entries if id(e) not in drop]
    if spec.get("sample"):
        for entry in regular:
            entry["zratio"] = _zsample(entry["abs"])
    out: Rec = {
        "roots": described,
        "skipped": skipped,
        "unstable": unstable,
        "files": [],
        "total_bytes": sum(int(e.get("size", 0)) for e in entries),
        "sha256": None,
        "stored": None,
    }
    canonical: List[Rec] = []
    for e in entries:
        if "link" in e:
            canonical.append({"path": e["path"], "link": e["link"]})
        elif spec.get("hash"):
            canonical.append({"path": e["path"], "size": e["size"], "sha256": e["sha256"]})
        out["files"].append({k: v for k, v in e.items() if k != "abs"})
    if spec.get("hash"):
        data = manifest_canonical(roots, canonical)
        import hashlib

        out["sha256"] = hashlib.sha256(data).hexdigest()
        if spec.get("store_dir"):
            out["stored"] = _store_manifest(str(spec["store_dir"]), out["sha256"], data)
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
