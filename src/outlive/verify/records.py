"""A pulled directory's records: its manifests (read-only, named by their hash), ``pull.json``
and ``PULL_VERIFIED.json``, which is written only after a verification passed and moved aside
(never deleted) once it no longer holds."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from outlive.errors import UsageError
from outlive.verify.manifest import Manifest
from outlive.verify.tree import META_DIR, VERIFIED_NAME, FileResultJson, Report, verify_tree

VERIFIED_FORMAT = "outlive-pull-verified/1"
PULL_INFO = "pull.json"
MANIFESTS_DIR = "manifests"


class PullInfo(TypedDict, total=False):
    """``DIR/.outlive/pull.json``: which run a pulled directory holds, and its manifest once
    the pull finished (``outlive.lifecycle.pull`` writes it)."""

    format: str
    run_id: str
    name: str
    target: str
    host: str | None
    roots: list[dict[str, str]]  # [{label, path}]
    started_at: float
    manifest_sha256: str | None
    box_manifest: str | None
    follow_links: bool  # pull --follow-links: the gate asks the box for the same listing
    run_state: str | None  # the run's state on the box when the pull started
    snapshot: bool  # the run was still going: its results were still changing


class VerifiedRecord(TypedDict, total=False):
    """``DIR/PULL_VERIFIED.json``, written only after a verification passed."""

    format: str
    manifest_sha256: str
    run_id: str | None
    name: str | None
    target: str | None
    roots: list[dict[str, str]] | None
    verified_at: float
    verified_at_utc: str
    run_state: str | None  # the run's state on the box when the pull started
    # True: a snapshot of a run still going, not its final result; `down` does not count it
    snapshot: bool
    load_skipped: list[str]  # checkpoints proven by SHA-256 only (each file says why)
    files: list[FileResultJson]


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


def read_pull_info(dest: Path) -> PullInfo:
    """The pull record in ``dest/.outlive/pull.json``; UsageError if DIR is no pulled dir."""
    path = meta_dir(dest) / PULL_INFO
    try:
        info: PullInfo = json.loads(path.read_text())
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


def write_json_atomic(path: Path, data: Any, tmp_dir: Path | None = None) -> None:
    """``data`` as ``path``, whole or not at all; the temp file is made in ``tmp_dir`` (on the
    same filesystem), by default beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = (tmp_dir or path.parent) / f".{path.name}.tmp-{os.getpid()}"
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
    record: VerifiedRecord = {
        "format": VERIFIED_FORMAT,
        "manifest_sha256": report.manifest_sha256,
        "run_id": info.get("run_id"),
        "name": info.get("name"),
        "target": info.get("target"),
        "roots": info.get("roots"),
        "verified_at": report.checked_at,
        "verified_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.checked_at)),
        "run_state": info.get("run_state"),
        "snapshot": bool(info.get("snapshot")),
        "load_skipped": [f.path for f in report.files if f.load_check == "skipped"],
        "files": [f.as_json() for f in report.files],
    }
    # The temp file goes in .outlive/: one left by a kill at the wrong moment must never be
    # taken for an extra file of the tree it proves.
    write_json_atomic(path, record, tmp_dir=meta_dir(dest))
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


def read_verified(dest: Path) -> VerifiedRecord | None:
    with contextlib.suppress(OSError, ValueError):
        data: VerifiedRecord = json.loads((dest / VERIFIED_NAME).read_text())
        if isinstance(data, dict):
            return data
    return None


def verify_dir(dest: Path, *, record: bool = True, require_load: bool = False) -> Report:
    """``outlive verify DIR``: check a pulled directory against its manifest again. With
    ``record``, a pass (re)writes PULL_VERIFIED.json and a failure moves it aside; with
    ``require_load``, a checkpoint that cannot be load-checked here fails."""
    dest = Path(dest)
    if not dest.is_dir():
        raise UsageError(f"{dest} is not a directory; give the directory that pull printed")
    info = read_pull_info(dest)
    manifest = load_manifest(dest, str(info["manifest_sha256"]))
    report = verify_tree(dest, manifest, require_load=require_load)
    if record:
        if report.ok:
            write_verified(dest, report, info)
        else:
            invalidate_verified(dest, "failed")
    return report
