"""``pull``: get a run's results off its box and prove them before any meter is stopped.

Result roots: the run's durable checkpoint directory (always) plus its *declared output paths*,
given relative to the target's workdir with ``pull --output PATH`` (repeatable) or as
``outputs = [...]`` in the target's options; they land locally under ``ckpt/`` and
``out/<PATH>``. The default destination is ``<project>/.outlive/pulled/<run-name>/<run-id>/``.

The steps, over the target's one multiplexed SSH master:

1. one agent round trip lists the roots (sizes, and how well each file compresses);
2. the box hashes every file (SHA-256, streamed) into a manifest named by its own hash, while
   the transfer runs;
3. rsync moves the files one directory at a time (U12): ``--partial`` so a cut resumes where
   it stopped, ``--timeout`` so a stalled link ends the attempt, bounded retries with backoff,
   and a failed directory never stops the others. The local directory is made before each
   transfer (U13); compressible payloads go with ``-z`` (U15); never scp (GEN3);
4. finished directories are hashed and load-checked here while the next one transfers;
5. the tree must match the manifest exactly (``outlive.verify``); only then is
   ``PULL_VERIFIED.json`` written next to the data. A log line proves nothing (U33).

Nothing is deleted here: files an earlier pull into the same directory brought and the box no
longer has are moved beside it (``<dest>.superseded/<time>/``), and a stale
``PULL_VERIFIED.json`` is moved into ``.outlive/previous/``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from outlive import verify as V
from outlive.backends.base import Backend
from outlive.config import Config, Target
from outlive.errors import TransportError, UsageError
from outlive.lifecycle.transfer import (
    NoteFn,
    ProgressFn,
    PullOptions,
    backoff,
    move_all,
    plan_units,
)
from outlive.session import Session
from outlive.store import PullRecord, RunRecord
from outlive.transport.ssh import SshTransport

__all__ = [
    "CKPT_LABEL",
    "OUTPUT_PREFIX",
    "PullOptions",
    "declared_outputs",
    "default_dest",
    "pull",
    "result_roots",
]

ROSTER_TIMEOUT_S = 120.0
# The box hashes a whole tree in one call; ssh's keep-alives notice a dead link long before
# this (U17), so it only bounds a box whose disk hangs.
MANIFEST_TIMEOUT_S = 6 * 3600.0
CKPT_LABEL = "ckpt"
OUTPUT_PREFIX = "out"

# ---------------------------------------------------------------------------------------------
# what to pull, and where


def declared_outputs(target: Target, extra: Iterable[str] = ()) -> list[str]:
    """The run's declared output paths (relative to the workdir), checked and normalised."""
    raw = list(target.placement.outputs) + list(extra)
    out: list[str] = []
    for item in raw:
        path = str(item).strip()
        norm = posixpath.normpath(path) if path else ""
        if (
            not path
            or path.startswith(("/", "~", "$"))
            or norm in (".", "..")
            or (norm.startswith("../"))
        ):
            raise UsageError(
                f"output path {item!r} must be relative to the workdir and stay inside it "
                "(e.g. --output results)"
            )
        if "\x00" in norm or "\n" in norm:
            raise UsageError(f"output path {item!r} holds a NUL or newline")
        if norm not in out:
            out.append(norm)
    for a in out:
        for b in out:
            if a != b and b.startswith(a + "/"):
                raise UsageError(f"output paths {a!r} and {b!r} overlap; declare only {a!r}")
    return out


def result_roots(target: Target, rec: RunRecord, outputs: Iterable[str]) -> list[dict[str, str]]:
    """[{label, path}] for the box: ``ckpt`` is the durable checkpoint dir, ``out/<p>`` each
    declared output (the agent expands ``~`` and ``$VARS`` in the workdir)."""
    roots = [{"label": CKPT_LABEL, "path": rec.ckpt_dir}]
    workdir = target.placement.workdir.rstrip("/") or "/"
    for rel in outputs:
        roots.append({"label": f"{OUTPUT_PREFIX}/{rel}", "path": f"{workdir}/{rel}"})
    return roots


def default_dest(cfg: Config, rec: RunRecord) -> Path:
    return cfg.state_dir / "pulled" / rec.name / rec.run_id


# ---------------------------------------------------------------------------------------------
# the pull


def pull(
    session: Session,
    ref: str,
    opts: PullOptions | None = None,
    *,
    on_progress: ProgressFn | None = None,
    on_note: NoteFn | None = None,
) -> dict[str, Any]:
    """Pull run ``ref``'s results and verify them; returns the report (``ok`` says it all)."""
    opts = opts or PullOptions()
    if opts.retries < 1 or opts.parallel < 1:
        raise UsageError("--retries and --parallel must be at least 1")
    if opts.compress not in ("auto", "always", "never"):
        raise UsageError("--compress must be auto, always or never")
    started = time.monotonic()
    note = on_note or (lambda _msg: None)
    cfg, store = session.cfg, session.store
    rec = store.resolve(ref)
    target = cfg.target(rec.target)
    roots = result_roots(target, rec, declared_outputs(target, opts.outputs))
    dest = (opts.dest or default_dest(cfg, rec)).expanduser().absolute()
    backend = session.backend(target)
    transport = backend.transport if isinstance(backend.transport, SshTransport) else None
    hash_request = {"sets": [{"roots": roots, "hash": True, "store_dir": rec.run_dir}]}

    with ThreadPoolExecutor(max_workers=1) as box_pool:
        # The box starts hashing at once; the roster and the transfer run meanwhile.
        box_hash: Future[Any] = box_pool.submit(
            backend.manifest, hash_request, timeout_s=MANIFEST_TIMEOUT_S
        )
        # 1. the roster: names, sizes, compressibility, and the run's state (one round trip)
        reply = backend.manifest(
            {
                "sets": [{"roots": roots, "hash": False, "sample": True}],
                "probe_run_dirs": [rec.run_dir],
            },
            timeout_s=ROSTER_TIMEOUT_S,
        )
        roster = reply["manifests"][0]
        state = (reply["probes"] or [{}])[0].get("state")
        warnings: list[str] = []
        if state in ("running", "pending"):
            warnings.append(
                f"run {rec.name!r} is still {state}: files it writes during the pull will not "
                "match the manifest; pull again after it ends"
            )
        warnings += [f"not pulled: {skipped}" for skipped in roster.get("skipped") or []]
        for msg in warnings:
            note(msg)

        # 2. the destination: made first (U13); what an earlier pull left is moved aside
        dest.mkdir(parents=True, exist_ok=True)
        V.invalidate_verified(dest, "superseded")
        moved = _move_aside_stale(dest, {f["path"] for f in roster["files"]})
        if moved:
            note(f"moved {len(moved)} file(s) of an earlier pull, gone from the box, beside {dest}")
        info: dict[str, Any] = {
            "format": "outlive-pull/1",
            "run_id": rec.run_id,
            "name": rec.name,
            "target": target.name,
            "host": target.connection.host,
            "roots": roster["roots"],
            "started_at": time.time(),
            "manifest_sha256": None,
        }
        V.write_json_atomic(V.meta_dir(dest) / V.PULL_INFO, info)

        # 3. + 4. move the files, and check each directory here as soon as it has landed
        units = plan_units(roster, dest, opts.compress)
        known = move_all(units, dest, target, transport, opts, on_progress, note)
        manifest_reply = _box_manifest(backend, box_hash, hash_request, opts, note)

    # 5. the verdict
    manifest = V.Manifest.from_reply(manifest_reply)
    for path in manifest_reply.get("unstable") or []:
        warnings.append(f"{path} changed on the box while it was hashed")
    V.store_manifest(dest, manifest)
    info["manifest_sha256"] = manifest.sha256
    info["box_manifest"] = manifest_reply.get("stored")
    V.write_json_atomic(V.meta_dir(dest) / V.PULL_INFO, info)
    report = V.verify_tree(dest, manifest, known=known)
    failed_units = [u for u in units if not u.ok]
    ok = report.ok and not failed_units
    verified_file = str(V.write_verified(dest, report, info)) if ok else None
    store.record_pull(
        PullRecord(
            run_id=rec.run_id,
            dest=str(dest),
            manifest_sha256=manifest.sha256,
            roots=[{"label": r["label"], "path": r["path"]} for r in roster["roots"]],
            files=len(manifest.entries),
            size_bytes=manifest.total_bytes,
            verified=ok,
            pulled_at=time.time(),
        )
    )
    attempts = [a for u in units for a in u.attempts]
    return {
        "ok": ok,
        "run_id": rec.run_id,
        "name": rec.name,
        "target": target.name,
        "state": state,
        "dest": str(dest),
        "manifest_sha256": manifest.sha256,
        "files": len(manifest.entries),
        "size_bytes": manifest.total_bytes,
        "verified_file": verified_file,
        "transfer": {
            "units": [u.as_json() for u in units],
            "failed_units": [u.label for u in failed_units],
            "attempts": len(attempts),
            "bytes_received": sum(a.bytes_received or 0 for a in attempts),
            "bytes_sent": sum(a.bytes_sent or 0 for a in attempts),
        },
        "verify": report.as_json(),
        "superseded": moved,
        "warnings": warnings,
        "seconds": round(time.monotonic() - started, 3),
    }


def _move_aside_stale(dest: Path, on_box: set[str]) -> list[str]:
    """Files that an earlier pull brought here (listed in one of this directory's manifests)
    and the box no longer has: moved to ``<dest>.superseded/<time>/``, never deleted."""
    earlier: set[str] = set()
    manifests = V.meta_dir(dest) / V.MANIFESTS_DIR
    for path in sorted(manifests.glob("*.json")) if manifests.is_dir() else []:
        with contextlib.suppress(UsageError):
            earlier.update(V.Manifest.from_bytes(path.read_bytes(), name=path.stem).entries)
    stale = sorted(p for p in earlier - on_box if os.path.lexists(dest / p))
    if not stale:
        return []
    aside = dest.parent / f"{dest.name}.superseded" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for rel in stale:
        (aside / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(dest / rel, aside / rel)
    return stale


def _box_manifest(
    backend: Backend,
    first: Future[Any],
    request: dict[str, Any],
    opts: PullOptions,
    note: NoteFn,
) -> dict[str, Any]:
    """The hashed manifest; a call lost to a cut link is asked again with backoff."""
    for attempt in range(1, opts.retries + 1):
        try:
            reply = (
                first.result()
                if attempt == 1
                else backend.manifest(request, timeout_s=MANIFEST_TIMEOUT_S)
            )
            manifest: dict[str, Any] = reply["manifests"][0]
            return manifest
        except TransportError as exc:
            if attempt == opts.retries:
                raise TransportError(
                    f"the box did not return the manifest after {attempt} tries ({exc}); "
                    "the files pulled so far stay; run the same pull again to resume"
                ) from None
            wait_s = backoff(attempt)
            note(f"manifest: {exc}; asking again in {wait_s:.0f} s")
            time.sleep(wait_s)
    raise AssertionError("unreachable")  # pragma: no cover
