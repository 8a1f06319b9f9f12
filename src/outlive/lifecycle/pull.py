"""``pull``: get a run's results off its box and prove them before any meter is stopped.

Result roots: the run's durable checkpoint directory (always) plus its *declared output paths*,
given relative to the target's workdir with ``pull --output PATH`` (repeatable) or as
``outputs = [...]`` in the target's options; they land locally under ``ckpt/`` and
``out/<PATH>``. The default destination is ``<project>/.outlive/pulled/<run-name>/<run-id>/``.

The steps, over the target's one multiplexed SSH master:

1. one agent round trip lists the roots (sizes, and how well each file compresses);
2. the box hashes every file (SHA-256, streamed; one unchanged since an earlier pull keeps the
   hash that pull took, ``agent/box/manifests.py``) into a manifest named by its own hash, while
   the transfer runs (asked right after the roster, of the same agent: one agent start on the
   box, over one channel the pull opens on the master, which the CLI starts opening before
   it imports the rest of the pull, and closes as soon as the hashes are in);
3. rsync moves the files, each big top-level directory by its own rsync and the rest of each
   root by one more (U12): ``--partial`` so a cut resumes where
   it stopped, ``--timeout`` so a stalled link ends the attempt, bounded retries with backoff,
   and a failed directory never stops the others. The local directory is made before each
   transfer (U13); compressible payloads go with ``-z`` (U15); never scp (GEN3);
4. each file is hashed and load-checked here once rsync has put it in place: while the rest
   still moves where a CPU core is spare (a slow link hides the hashing), after the transfer
   where the transfer keeps the cores busy (``spare_cpu``); a result is reused only while the
   file's size, mtime, inode and ctime stay the same (a file replaced or written since is
   hashed again), also one an earlier pull kept (``verify/hash_cache.py``; ``--rehash`` reads
   every byte at both ends);
5. the tree must match the manifest exactly (``outlive.verify``); only then is
   ``PULL_VERIFIED.json`` written next to the data. A log line proves nothing (U33).

Nothing is deleted or overwritten here: files an earlier pull into the same directory brought
and the box no longer has, and any local file (``--to DIR`` included) that a transfer replaces
or that differs from the box, are moved beside it (``<dest>.superseded/<time>/``, rsync
``--backup`` for what it replaces); a stale ``PULL_VERIFIED.json`` is moved into
``.outlive/previous/``.

Before anything is moved or written, every manifest path is checked (relative, no ``..``, NUL
or empty part, inside the destination after ``resolve()``) and the files must fit the
destination's free space; a disk that fills during the pull is one sentence, and the files
that landed (half files in ``.outlive-partial/``) stay for the next pull to resume. A symlink
in the results is never lost silently: the box keeps links that resolve to listed content,
lists the content behind the others that stay in the run's roots (or all, with
``--follow-links``), and reports the rest as not pulled, which ``down`` counts as lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive import verify as V
from outlive.backends.base import Backend
from outlive.config import Config, Target
from outlive.errors import LocalDiskFull, TransportError, UnsafeManifest, UsageError
from outlive.lifecycle.pull_box import ROSTER_TIMEOUT_S, BoxManifests, pick_run
from outlive.lifecycle.transfer import (
    PARTIAL_DIRNAME,
    NoteFn,
    ProgressFn,
    PullOptions,
    backoff,
    free_bytes,
    move_all,
    plan_units,
    sizes_here,
)
from outlive.session import Session
from outlive.store import PullRecord, RunRecord
from outlive.verify import hash_cache

if TYPE_CHECKING:
    from outlive.lifecycle.pull_early import EarlyRsync

__all__ = [
    "BUSY_STATES",
    "CKPT_LABEL",
    "OUTPUT_PREFIX",
    "BoxManifests",
    "PullOptions",
    "declared_outputs",
    "default_dest",
    "pick_run",
    "pull",
    "result_roots",
]

# The box hashes a whole tree in one call; ssh's keep-alives notice a dead link long before
# this (U17), so it only bounds a box whose disk hangs.
MANIFEST_TIMEOUT_S = 6 * 3600.0
CKPT_LABEL = "ckpt"
OUTPUT_PREFIX = "out"
# A run in one of these states is still going (a requeued one starts again: Slurm, Kubernetes,
# a Kaggle session limit): a pull of it is a snapshot, not its result.
BUSY_STATES = ("running", "pending", "requeued")

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
    box: BoxManifests | None = None,
    early: EarlyRsync | None = None,
) -> dict[str, Any]:
    """Pull run ``ref``'s results and verify them; returns the report (``ok`` says it all).
    A run still going when the pull starts gives a snapshot (``snapshot``: True, recorded in
    PULL_VERIFIED.json), which ``down`` never counts as the run's result. What the backend made
    only to reach the results (a Kubernetes reader pod) is freed at the end, and said.
    ``early``: the checkpoint root's rsync, started before the roster (used where it fits the
    plan, else ended unused)."""
    try:
        return _pull(
            session, ref, opts, on_progress=on_progress, on_note=on_note, box=box, early=early
        )
    finally:
        if early is not None:
            early.discard()
        for msg in session.release():
            (on_note or (lambda _msg: None))(msg)


def _pull(
    session: Session,
    ref: str,
    opts: PullOptions | None = None,
    *,
    on_progress: ProgressFn | None = None,
    on_note: NoteFn | None = None,
    box: BoxManifests | None = None,
    early: EarlyRsync | None = None,
) -> dict[str, Any]:
    opts = opts or PullOptions()
    if opts.retries < 1 or opts.parallel < 1:
        raise UsageError("--retries and --parallel must be at least 1")
    if opts.compress not in ("auto", "always", "never"):
        raise UsageError("--compress must be auto, always or never")
    started = time.monotonic()
    note = on_note or (lambda _msg: None)
    cfg, store = session.cfg, session.store
    rec, picked = pick_run(store, ref, opts.target)
    if picked:
        note(f"pulling {picked}")
    target = cfg.target(rec.target)
    roots = result_roots(target, rec, declared_outputs(target, opts.outputs))
    if opts.dest is None:
        dest = default_dest(cfg, rec).expanduser().absolute()
    else:
        from outlive.lifecycle.pull_dest import checked_dest

        dest = checked_dest(opts.dest, cfg.project_dir, cfg.state_dir)
    backend = session.backend(target)
    if getattr(backend, "downloads_output", False):  # a Kaggle version's output
        from outlive.lifecycle.output_pull import pull_downloaded

        result = pull_downloaded(
            store, rec, target, backend, roots, dest, require_load=opts.require_load_check
        )
        return {**result, "picked": picked}
    transport = backend.transport  # local paths for the local target, host:path over ssh
    if early is not None and early.dest != dest:
        early.discard()  # made for another destination: not this pull's
        early = None
    follow = bool(opts.follow_links)
    hash_request = {
        "sets": [
            {
                "roots": roots,
                "hash": True,
                "store_dir": rec.run_dir,
                "follow_links": follow,
                "reuse": not opts.rehash,  # the hash of a file unchanged since an earlier pull
            }
        ]
    }

    if box is None or box.backend is not backend:  # ``box``: opened early, for this backend
        box = BoxManifests(backend)
    # Two threads beside the transfer: the box's hashes (then what keeps them here), and the
    # pull's first record, whose fsync need not hold up the first byte.
    with box, ThreadPoolExecutor(max_workers=2) as box_pool, _stopping(box):
        # 1. the roster: names, sizes, compressibility, and the run's state (one round trip)
        reply = box.ask(
            {
                "sets": [{"roots": roots, "hash": False, "sample": True, "follow_links": follow}],
                "probe_run_dirs": [rec.run_dir],
            },
            timeout_s=ROSTER_TIMEOUT_S,
        )
        # The box hashes every file while the transfer runs. Asked only now, of the agent that
        # answered the roster (over the master the roster opened): asked at once, it raced the
        # roster to open the master and paid for a second connection on the critical path.
        box_hash: Future[Any] = box_pool.submit(box.last, hash_request, MANIFEST_TIMEOUT_S)
        roster = reply["manifests"][0]
        state = (reply["probes"] or [{}])[0].get("state")
        snapshot = state in BUSY_STATES
        warnings: list[str] = []
        if snapshot:
            warnings.append(
                f"run {rec.name!r} ({rec.run_id}) is still {state}: this pull is a snapshot of a "
                "run still going, not its final result (`down` does not count it); pull again "
                "after it ends"
            )
        # Every path is checked before anything is moved or written (a hostile or broken
        # manifest writes nothing), and the destination must be able to hold the files.
        check_roster(roster, dest)
        check_free_space(roster, dest)
        not_pulled = [f"{f['path']} -> {f['outside']}" for f in roster["files"] if "outside" in f]
        warnings += [f"not pulled: {skipped}" for skipped in roster.get("skipped") or []]
        warnings += [
            f"not pulled: {item} (a symlink to data outside the run's result roots; "
            "pull --follow-links brings its content, or `down` counts it as lost)"
            for item in not_pulled
        ]
        for msg in warnings:
            note(msg)

        with local_disk(dest):
            # 2. the destination: made first (U13); what an earlier pull left is moved aside
            dest.mkdir(parents=True, exist_ok=True)
            V.invalidate_verified(dest, "superseded")
            aside = early.aside if early is not None else superseded_dir(dest)
            moved = _move_aside_stale(dest, {f["path"] for f in roster["files"]}, aside)
            prior = {} if opts.rehash else hash_cache.load_cached(dest)
            if moved:
                note(
                    f"moved {len(moved)} file(s) of an earlier pull, gone from the box, "
                    f"beside {dest}"
                )
        info: dict[str, Any] = {
            "format": "outlive-pull/1",
            "run_id": rec.run_id,
            "name": rec.name,
            "target": target.name,
            "host": target.connection.host,
            "roots": roster["roots"],
            "started_at": time.time(),
            "manifest_sha256": None,
            "follow_links": follow,
            "run_state": state,
            "snapshot": snapshot,
        }
        info_path = V.meta_dir(dest) / V.PULL_INFO
        first_record = box_pool.submit(V.write_json_atomic, info_path, dict(info))
        # The manifest is checked and kept here as soon as the box sends it, while the
        # transfer still runs: none of that waits for the last file any more.
        kept_manifest = box_pool.submit(
            lambda: _keep_manifest(
                dest, info, box_hash.result()["manifests"][0], first_record, info_path
            )
        )

        # 3. + 4. move the files, and check each directory here as soon as it has landed
        units = plan_units(roster, dest, opts.compress, aside=aside)
        claim = early.claim if early is not None else None
        landed = move_all(units, dest, target, transport, opts, on_progress, note, claim, prior)
        known = {**prior, **landed}
        if early is not None:
            early.discard()  # fitted no unit: ended unused, having written nothing
        if any(u.disk_full for u in units):
            raise _disk_full(dest)
        with local_disk(dest):
            moved += make_links(roster, dest, aside)
        kept = [p for p in _listed_under(aside) if p not in moved]
        if kept:
            note(f"kept {len(kept)} local file(s) that differ from the box in {aside}")
            moved += kept
        try:
            with local_disk(dest):
                manifest, manifest_reply = kept_manifest.result()
        except TransportError:  # the box's reply was lost: asked again, with backoff
            manifest_reply = _box_manifest(backend, box_hash, hash_request, opts, note)
            with local_disk(dest):
                manifest, _ = _keep_manifest(dest, info, manifest_reply, first_record, info_path)

    # 5. the verdict
    for path in manifest_reply.get("unstable") or []:
        warnings.append(f"{path} changed on the box while it was hashed")
    if manifest_reply.get("store_error"):
        warnings.append(
            f"the box could not keep its copy of the manifest ({manifest_reply['store_error']}); "
            "the copy it sent is checked and kept here"
        )
    with local_disk(dest):
        strict = opts.require_load_check
        report = V.verify_tree(dest, manifest, known=known, require_load=strict)
        differ = _differing(report, manifest)
        if differ:
            # Same size, other bytes (and an mtime rsync's quick check took as equal): keep
            # the local copy aside and move the box's once more.
            note(f"{len(differ)} local file(s) differ from the box at the same size; kept in "
                 f"{aside} and pulled again")  # fmt: skip
            for rel in differ:
                keep_aside(dest, rel, aside)
            moved += [p for p in differ if p not in moved]
            subset = {**roster, "files": [f for f in roster["files"] if f["path"] in differ]}
            again = plan_units(subset, dest, opts.compress, aside=aside)
            known.update(move_all(again, dest, target, transport, opts, on_progress, note))
            if any(u.disk_full for u in again):
                raise _disk_full(dest)
            units += again
            report = V.verify_tree(dest, manifest, known=known, require_load=strict)
        failed_units = [u for u in units if not u.ok]
        ok = report.ok and not failed_units
        hash_cache.save_cache(dest, report.files)
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
        "snapshot": snapshot,
        "picked": picked,
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
        "hashes_reused": _reuse_counts(manifest_reply, report, prior),
        "superseded": moved,
        "not_pulled": [e.path for e in manifest.not_pulled],
        "warnings": warnings,
        "seconds": round(time.monotonic() - started, 3),
    }


def _reuse_counts(
    box_reply: dict[str, Any], report: V.Report, prior: dict[str, V.FileResult]
) -> dict[str, int]:
    """Files (and their bytes) whose hash an earlier pull's was reused for, unchanged since:
    on the box, and here."""
    here = [
        r
        for r in report.files
        if r.path in prior
        and r.hashed_at_ns is not None
        and r.hashed_at_ns == prior[r.path].hashed_at_ns
        and r.stamp == prior[r.path].stamp
    ]
    return {
        "box_files": int(box_reply.get("reused_files") or 0),
        "box_bytes": int(box_reply.get("reused_bytes") or 0),
        "local_files": len(here),
        "local_bytes": sum(r.size or 0 for r in here),
    }


def superseded_dir(dest: Path) -> Path:
    """Where this pull keeps local files it replaces or that left the box: beside ``dest``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return dest.parent / f"{dest.name}.superseded" / stamp


def _move_aside_stale(dest: Path, on_box: set[str], aside: Path) -> list[str]:
    """Files that an earlier pull brought here (listed in one of this directory's manifests)
    and the box no longer has: moved to ``<dest>.superseded/<time>/``, never deleted."""
    earlier: set[str] = set()
    manifests = V.meta_dir(dest) / V.MANIFESTS_DIR
    for path in sorted(manifests.glob("*.json")) if manifests.is_dir() else []:
        with contextlib.suppress(UsageError):
            earlier.update(V.Manifest.from_bytes(path.read_bytes(), name=path.stem).entries)
    stale = []
    for p in sorted(earlier - on_box):
        with contextlib.suppress(UnsafeManifest):
            if os.path.lexists(V.local_path(dest, p, is_link=True)):
                stale.append(p)
    for rel in stale:
        keep_aside(dest, rel, aside)
    return stale


def keep_aside(dest: Path, rel: str, aside: Path) -> Path:
    """Move ``dest/rel`` to ``aside/rel`` (never over something already kept there)."""
    target = aside / rel
    n = 0
    while os.path.lexists(target):
        n += 1
        target = aside / f"{rel}.{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(dest / rel, target)
    return target


def _differing(report: V.Report, manifest: V.Manifest) -> list[str]:
    """Regular files here whose size matches the box's but whose SHA-256 does not."""
    out = []
    for r in report.files:
        entry = manifest.entries.get(r.path)
        if (
            entry is not None
            and entry.link is None
            and r.kind == "file"
            and r.size == entry.size
            and r.sha256 is not None
            and r.sha256 != entry.sha256
        ):
            out.append(r.path)
    return out


def _listed_under(aside: Path) -> list[str]:
    """Paths (relative) of everything kept in ``aside`` so far."""
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(aside):
        for name in files:
            out.append(os.path.relpath(os.path.join(dirpath, name), aside).replace(os.sep, "/"))
    return sorted(out)


def check_roster(roster: dict[str, Any], dest: Path) -> None:
    """The box's roster, checked before anything is moved or written: every root label and
    path is relative and clean (no absolute path, '..', '.', NUL or empty part), each file lies
    under its root and below no other entry, and lands inside ``dest`` after ``resolve()``."""
    labels = [V.check_rel_path(r.get("label"), "result root label") for r in roster["roots"]]
    kinds = {r["label"]: r for r in roster["roots"]}
    paths: dict[str, bool] = {}
    for f in roster["files"]:
        path = V.check_rel_path(f.get("path"))
        root, rel = f.get("root"), f.get("rel")
        if root not in kinds or not isinstance(rel, str):
            raise UnsafeManifest(f"refusing the manifest: {path!r} names no listed result root")
        if path != (f"{root}/{rel}" if rel else root) or (rel and V.check_rel_path(rel) != rel):
            raise UnsafeManifest(f"refusing the manifest: {path!r} disagrees with its root/rel")
        paths[path] = "link" in f
    V.check_tree_paths(labels, paths)
    V.check_inside(dest, paths)


def check_free_space(roster: dict[str, Any], dest: Path) -> None:
    """Refuse, in one sentence, a pull that cannot fit: the roster's bytes not yet here (each
    file by its apparent size: a sparse file lands at full size) against the free space."""
    need = 0
    biggest: tuple[int, str] = (0, "")
    here = sizes_here(dest, [str(f["path"]) for f in roster["files"]])
    for f in roster["files"]:
        size = int(f.get("size") or 0)
        if here.get(str(f["path"])) == size:
            continue  # already here (or the same size: rsync keeps what matches)
        need += size
        biggest = max(biggest, (size, str(f["path"])))
    if not need:
        return
    free = free_bytes(dest)
    if biggest[0] > free:
        raise LocalDiskFull(
            f"{biggest[1]} is {_gib(biggest[0])} but {dest} has only {_gib(free)} free; "
            "free space there or pull --to a bigger disk (nothing was written)"
        )
    if need > free:
        raise LocalDiskFull(
            f"the pull needs {_gib(need)} but {dest} has only {_gib(free)} free; free space "
            "there or pull --to a bigger disk (nothing was written)"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _disk_full(dest: Path) -> LocalDiskFull:
    return LocalDiskFull(
        f"the disk holding {dest} is full; the files that landed are kept (half files in "
        f"{PARTIAL_DIRNAME}/), so free space there and run the same pull again to resume"
    )


@contextlib.contextmanager
def local_disk(dest: Path) -> Iterator[None]:
    """A full local disk while writing the pull's files or records: one sentence, kept files."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(dest) from None
        raise


def make_links(roster: dict[str, Any], dest: Path, aside: Path) -> list[str]:
    """The symlinks kept as links (a relative link inside its root, a dangling one, one back to
    a listed directory): made here exactly as on the box; a local file in the way is kept in
    ``aside``. Links outside the run's roots are not made: their data was not pulled."""
    moved: list[str] = []
    for f in roster["files"]:
        if "link" not in f or "outside" in f:
            continue
        rel, target = str(f["path"]), str(f["link"])
        local = V.local_path(dest, rel, is_link=True)
        if os.path.islink(local) and os.readlink(local) == target:
            continue
        if os.path.lexists(local):
            keep_aside(dest, rel, aside)
            moved.append(rel)
        local.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, local)
    return moved


@contextlib.contextmanager
def _stopping(box: BoxManifests) -> Iterator[None]:
    """A pull that stops (Ctrl-C, a full disk, a refused manifest) ends the box's channel
    first: the hashing it asked for is not waited for (a big tree: minutes)."""
    try:
        yield
    except BaseException:
        box.abort()
        raise


def _keep_manifest(
    dest: Path,
    info: dict[str, Any],
    reply: dict[str, Any],
    first_record: Future[None],
    info_path: Path,
) -> tuple[V.Manifest, dict[str, Any]]:
    """The box's manifest ``reply``, checked (its hash recomputed, every path inside ``dest``),
    kept next to the data, and named in the pull's record (written after ``first_record``, the
    record the pull began with)."""
    manifest = V.Manifest.from_reply(reply)
    for entry in manifest.entries.values():
        V.local_path(dest, entry.path, is_link=entry.link is not None)
    first_record.result()
    V.store_manifest(dest, manifest)
    info["manifest_sha256"] = manifest.sha256
    info["box_manifest"] = reply.get("stored")
    V.write_json_atomic(info_path, info)
    return manifest, reply


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
