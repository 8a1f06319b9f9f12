"""``pull`` from a platform whose results come as a download (a Kaggle version's output, through
``kaggle kernels output``) rather than over a transport: the manifest was built on the platform
by the agent's own code when the version ended; the whole output is downloaded beside the
destination, each listed file moved into place, and the tree verified here exactly as any pull
is (``outlive.verify``): only then is ``PULL_VERIFIED.json`` written, which ``down`` counts.

A cut connection is resumed by the provider's client (HTTP Range); a pull that stops anyway
(killed, or the client gave up) keeps its download directory, named by the manifest's hash (one
version's output never changes), and the next pull resumes it; a download of another output is
removed then, and every download directory once the files are placed."""

from __future__ import annotations

import os
import posixpath
import shutil
import time
from pathlib import Path
from typing import Any

from outlive import verify as V
from outlive.backends.base import Backend
from outlive.config import Target
from outlive.errors import UnsafeManifest
from outlive.store import PullRecord, RunRecord, Store

WORKING = "/kaggle/working"  # what a version's output stands for
TIMEOUT_S = 600.0


def pull_downloaded(
    store: Store,
    rec: RunRecord,
    target: Target,
    backend: Backend,
    roots: list[dict[str, str]],
    dest: Path,
    *,
    require_load: bool = False,
) -> dict[str, Any]:
    started = time.monotonic()
    reply = backend.manifest(
        {"sets": [{"roots": roots, "hash": True}], "probe_run_dirs": [rec.run_dir]},
        timeout_s=TIMEOUT_S,
    )
    manifest = V.Manifest.from_reply(reply["manifests"][0])
    state = (reply["probes"] or [{}])[0].get("state")
    for entry in manifest.entries.values():  # every path checked before anything is written
        V.local_path(dest, entry.path, is_link=entry.link is not None)
    dest.mkdir(parents=True, exist_ok=True)
    V.invalidate_verified(dest, "superseded")
    staging = dest.parent / f".{dest.name}.download-{manifest.sha256[:16]}"
    _drop_downloads(dest, keep=staging)  # of another output: never resumed into this one
    _place(manifest, backend.download(rec.run_dir, staging), dest)  # type: ignore[attr-defined]
    _drop_downloads(dest, keep=None)
    info: dict[str, Any] = {
        "format": "outlive-pull/1", "run_id": rec.run_id, "name": rec.name,
        "target": target.name, "host": None, "roots": roots, "started_at": time.time(),
        "manifest_sha256": manifest.sha256, "follow_links": False, "run_state": state,
        "snapshot": state in ("running", "pending", "requeued"),
    }  # fmt: skip
    V.store_manifest(dest, manifest)
    V.write_json_atomic(V.meta_dir(dest) / V.PULL_INFO, info)
    report = V.verify_tree(dest, manifest, require_load=require_load)
    verified_file = str(V.write_verified(dest, report, info)) if report.ok else None
    store.record_pull(
        PullRecord(
            run_id=rec.run_id, dest=str(dest), manifest_sha256=manifest.sha256, roots=roots,
            files=len(manifest.entries), size_bytes=manifest.total_bytes, verified=report.ok,
            pulled_at=time.time(),
        )
    )  # fmt: skip
    return {
        "ok": report.ok, "run_id": rec.run_id, "name": rec.name, "target": target.name,
        "state": state, "snapshot": info["snapshot"], "picked": None, "dest": str(dest),
        "manifest_sha256": manifest.sha256, "files": len(manifest.entries),
        "size_bytes": manifest.total_bytes, "verified_file": verified_file,
        "transfer": {
            "units": [], "failed_units": [], "attempts": 1, "method": "download",
            "bytes_received": manifest.total_bytes, "bytes_sent": 0,
        },
        "verify": report.as_json(), "superseded": [],
        "not_pulled": [e.path for e in manifest.not_pulled], "warnings": [],
        "seconds": round(time.monotonic() - started, 3),
    }  # fmt: skip


def _drop_downloads(dest: Path, keep: Path | None) -> None:
    for old in dest.parent.glob(f".{dest.name}.download*"):
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _place(manifest: V.Manifest, working: Path, dest: Path) -> None:
    """Move each listed file from the downloaded output into ``dest`` under its label."""
    for entry in manifest.entries.values():
        if entry.link is not None:
            continue  # not in a version's output: counted as not pulled by the verdict
        label, root = next((lb, p) for lb, p in manifest.roots if entry.path.startswith(lb + "/"))
        rel = posixpath.relpath(root, WORKING)
        if rel.startswith(".."):
            raise UnsafeManifest(f"result root {root} is outside {WORKING}")
        src = working / rel / entry.path[len(label) + 1 :]
        dst = V.local_path(dest, entry.path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_file():
            os.replace(src, dst)
