"""Moving a run's results off the box: rsync, a few big directories at a time, resumable.

Each *unit* is one big top-level directory of a result root, the rest of that root, or one
declared file, and gets its own rsync with its own bounded, backed-off retries, so one failure
never loses the rest and a rerun skips what has landed (U12). ``--partial`` keeps a half file
when the link is cut and the next attempt sends only the rest; ``--timeout`` ends an attempt
whose link stalls; a wall-clock limit per attempt bounds the rest. The local directory is made
before each transfer (U13); a unit whose sample compresses well goes with ``-z`` (U15). rsync
runs over the target's multiplexed SSH master, never scp (GEN3). A few units move at once, and
each file is hashed and load-checked here once rsync has put it in place: at once while a CPU
core is spare, so a slow link hides the hashing, and after the transfer where the transfer keeps
the cores busy (``spare_cpu``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlive import verify as V
from outlive.config import Target
from outlive.errors import TransportError
from outlive.lifecycle.landed import LandedChecks
from outlive.lifecycle.rsync_run import (
    LANDED_MARK,
    STOPPED_ERROR,
    WALL_TIMEOUT_RC,
    Attempt,
    run_rsync,
)
from outlive.transport.base import Transport
from outlive.transport.files import RsyncOptions

DEFAULT_RETRIES = 6
DEFAULT_PARALLEL = 4
DEFAULT_STALL_TIMEOUT_S = 30.0
DEFAULT_ATTEMPT_TIMEOUT_S = 3600.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
COMPRESS_BELOW_RATIO = 0.85  # compress a directory whose sample shrinks by 15 % or more (U15)
# A top-level directory this big gets an rsync of its own (moving beside the others); smaller
# ones ride with the rest of their root. Measured on the 128 MiB bench tree (4 directories of
# 32 MiB): one rsync instead of five took 0.44 s and 0.39 CPU-s (both ends) vs 0.57 s and 0.50.
OWN_RSYNC_MIN_BYTES = 64 << 20
# rsync exit codes worth another attempt: the link or the remote side went away, or stalled.
RETRYABLE_RC = frozenset({5, 10, 12, 30, 35, 255})
LINK_RC = frozenset({12, 30, 35, 255})  # the connection itself failed or stalled

_NO_RSYNC_RE = re.compile(r"rsync: (command )?not found|rsync: No such file or directory")
_DISK_FULL_RE = re.compile(r"No space left on device|Disk quota exceeded|\(28\)|\(122\)")
# Where rsync keeps a half file (``--partial-dir``, per directory): a file at its final name is
# always a complete one, so one that differs from the box is kept aside, never overwritten.
PARTIAL_DIRNAME = ".outlive-partial"

ProgressFn = Callable[[int, int, str], None]  # (bytes done, bytes in all, what is moving)
NoteFn = Callable[[str], None]
# An rsync already started and waiting for its list on stdin, for the unit whose command (with
# ``--files-from=-``) is the one given; None where there is none (``pull_early.EarlyRsync``).
ClaimFn = Callable[[list[str]], "subprocess.Popen[bytes] | None"]
STDIN_LIST = "-"


@dataclass(frozen=True)
class PullOptions:
    """How to pull; the defaults suit a flaky link to a rented box."""

    dest: Path | None = None
    outputs: tuple[str, ...] = ()
    retries: int = DEFAULT_RETRIES
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    attempt_timeout_s: float = DEFAULT_ATTEMPT_TIMEOUT_S
    bwlimit_kbps: int | None = None  # the whole pull, shared among the rsyncs moving at once
    compress: str = "auto"  # "auto" | "always" | "never"
    parallel: int = DEFAULT_PARALLEL  # directories moved at once
    follow_links: bool = False  # pull the content behind every symlink, wherever it points
    target: str | None = None  # pull NAME on this target (-t): which target's newest run
    require_load_check: bool = False  # a checkpoint its loader cannot load here fails the pull
    rehash: bool = False  # read every byte at both ends, reusing no hash of an earlier pull


@dataclass
class Unit:
    """One directory (or one declared file) moved by its own rsync and its own retries."""

    label: str
    source: str  # box path: a directory (files are relative to it) or a single file
    local: Path  # local directory, or the local file for a single-file unit
    files: list[str]  # paths relative to ``source`` (empty for a single-file unit)
    paths: list[str]  # the same files as manifest paths
    sizes: list[int]
    compress: bool
    attempts: list[Attempt] = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    backup_dir: Path | None = None  # where rsync keeps a local file it would replace
    disk_full: bool = False  # this machine's disk filled up during the transfer
    started_early: bool = False  # its first rsync was the pull's early one (pull_early)

    @property
    def size_bytes(self) -> int:
        return sum(self.sizes)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "files": len(self.paths),
            "size_bytes": self.size_bytes,
            "compress": self.compress,
            "started_early": self.started_early,
            "ok": self.ok,
            "error": self.error,
            "attempts": [a.as_json() for a in self.attempts],
        }


def plan_units(
    roster: dict[str, Any],
    dest: Path,
    compress: str,
    *,
    aside: Path | None = None,
    own_rsync_min_bytes: int = OWN_RSYNC_MIN_BYTES,
) -> list[Unit]:
    """The rsyncs of a pull: a top-level directory of a root holding ``own_rsync_min_bytes``
    or more gets its own (a few move at once); the rest of each root (its top-level files
    and its smaller directories) moves in one rsync, or two when only some of it compresses;
    each declared single file gets its own. A directory is compressed when its sample says
    it pays (U15). With ``aside``, a local file a unit would replace is kept there (rsync
    ``--backup``)."""
    kinds = {r["label"]: r for r in roster["roots"]}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in roster["files"]:
        if "link" in f:
            continue  # a kept link is made here (make_links); one outside the roots is not pulled
        root = kinds[f["root"]]
        if root["kind"] == "file":
            key = (f["root"], "")
        else:
            rel = str(f["rel"])
            key = (f["root"], rel.split("/", 1)[0] + "/" if "/" in rel else "")
        groups.setdefault(key, []).append(f)
    # Each rsync costs a session, a shell and rsync on both ends (~25 ms of CPU here, and a
    # round trip before its first byte): a directory too small to gain from moving beside the
    # others rides with the rest of its root.
    merged: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for (label, sub), files in sorted(groups.items()):
        squeeze = _compresses(files, compress)
        big = sum(int(f.get("size") or 0) for f in files) >= own_rsync_min_bytes
        whole = "" if kinds[label]["kind"] == "file" or not (sub and big) else sub
        merged.setdefault((label, whole, squeeze), []).extend(files)
    units: list[Unit] = []
    for (label, sub, squeeze), group in sorted(merged.items()):
        files = sorted(group, key=lambda f: str(f["rel"]))
        root = kinds[label]
        single = root["kind"] == "file"
        name = f"{label}/{sub}".rstrip("/") if sub else label
        if not sub and squeeze and (label, "", False) in merged:
            name = f"{label} (-z)"  # the rest of this root that compresses, beside what does not
        backup = None
        if aside is not None:  # rsync keeps a replaced file at its path below the unit
            if not single:
                backup = aside / label
            else:
                backup = aside / label.rsplit("/", 1)[0] if "/" in label else aside
        units.append(
            Unit(
                label=name,
                source=root["real"] if single else root["path"],
                local=dest / label,
                files=[] if single else [str(f["rel"]) for f in files],
                paths=[str(f["path"]) for f in files],
                sizes=[int(f.get("size") or 0) for f in files],
                compress=squeeze,
                backup_dir=backup,
            )
        )
    return units


def _compresses(files: list[dict[str, Any]], compress: str) -> bool:
    """Whether these files go with ``-z``: always, never, or (auto) when their sampled bytes
    shrink by COMPRESS_BELOW_RATIO or better, weighted by size (U15)."""
    if compress in ("always", "never"):
        return compress == "always"
    sampled = [(int(f.get("size") or 0), f.get("zratio")) for f in files]
    weight = sum(s for s, r in sampled if r is not None)
    shrunk = sum(s * r for s, r in sampled if r is not None)
    return weight > 0 and shrunk / weight < COMPRESS_BELOW_RATIO


def move_all(
    units: list[Unit],
    dest: Path,
    target: Target,
    transport: Transport,
    opts: PullOptions,
    on_progress: ProgressFn | None,
    note: NoteFn,
    claim: ClaimFn | None = None,
    prior: Mapping[str, V.FileResult] | None = None,
) -> dict[str, V.FileResult]:
    """Transfer every unit, a few at a time; each file that lands is hashed and load-checked
    here while the rest still moves. Returns what those checks saw. ``claim``: an rsync
    started early, for the unit it fits (its first attempt). ``prior``: what an earlier pull
    saw (``verify.hash_cache``); a file rsync left as it was and that still holds is not
    hashed again (the proof reuses that result)."""
    total = sum(u.size_bytes for u in units)
    kept = prior or {}
    stream_opts = shared_bwlimit(opts, min(opts.parallel, len(units)))
    lock = threading.Lock()
    moved_bytes: dict[str, int] = {}

    def on_moved(unit: Unit, n: int) -> None:
        with lock:
            moved_bytes[unit.label] = min(unit.size_bytes, n)
            so_far = sum(moved_bytes.values())
        if on_progress is not None:
            on_progress(so_far, total, unit.label)

    with LandedChecks(dest, local_workers()) as checks:

        def move(unit: Unit) -> None:
            # Each file is hashed once rsync has put it in place, while the rest of the unit
            # still moves (small files a batch at a time); what rsync did not name (already
            # here) once the unit is done.
            rels = unit.files or [""] * len(unit.paths)  # a single-file unit is not streamed
            by_rel = dict(zip(rels, zip(unit.paths, unit.sizes, strict=True), strict=True))
            hashed: set[str] = set()
            batch = checks.batch()

            def landed(rel: str) -> None:
                if rel in by_rel and rel not in hashed:
                    hashed.add(rel)
                    batch.add(*by_rel[rel])

            try:
                transfer_unit(
                    unit, dest, target, transport, stream_opts, lambda n: on_moved(unit, n),
                    note, landed if unit.files else None, claim, checks.stop,
                )  # fmt: skip
                if unit.ok:
                    for rel, (path, size) in by_rel.items():
                        if rel not in hashed and not V.reusable(dest, kept.get(path)):
                            batch.add(path, size)
            finally:
                batch.flush()

        # A few directories move at once: each rsync's start-up (a new session on the master,
        # rsync on the box) overlaps the others' data, and a slow one does not hold the rest.
        with ThreadPoolExecutor(max_workers=opts.parallel) as unit_pool:
            try:
                list(unit_pool.map(move, sorted(units, key=lambda u: -u.size_bytes)))
            except BaseException:
                checks.stop.set()  # Ctrl-C: every rsync ends before the pool waits for it
                raise
        checks.transfer_over()
        return checks.results()


def shared_bwlimit(opts: PullOptions, streams: int) -> PullOptions:
    """``--bwlimit-kbps`` caps the whole pull: each of the rsyncs moving at once gets its share."""
    if not opts.bwlimit_kbps or streams <= 1:
        return opts
    return dataclasses.replace(opts, bwlimit_kbps=max(1, opts.bwlimit_kbps // streams))


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still use on the filesystem of ``path`` (or of its
    nearest existing parent: the destination may not exist yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


def local_workers() -> int:
    return max(1, min(V.MAX_WORKERS, os.cpu_count() or 1))


def backoff(attempt: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))


# ---------------------------------------------------------------------------------------------
# rsync, one unit at a time


def rsync_argv(
    unit: Unit,
    transport: Transport,
    opts: PullOptions,
    list_file: str | None,
) -> list[str]:
    """The rsync command for one unit: resumable (``--partial``, U12), stall-bounded
    (``--timeout``), with progress and totals to read, over the target's transport."""
    flags = RsyncOptions(
        stats=True,
        timeout_s=max(1, int(opts.stall_timeout_s)),
        compress=unit.compress,
        bwlimit_kbps=int(opts.bwlimit_kbps) if opts.bwlimit_kbps else None,
        files_from=list_file,
    )
    if list_file is not None:
        there, here = f"{unit.source.rstrip('/') or '/'}/", f"{unit.local}/"
    else:
        there, here = unit.source, str(unit.local)
    argv = transport.rsync_argv("from_target", here, there, flags)
    # Symlinks reach rsync only as a path through a link the box chose to follow: send the
    # content behind them (kept links are made here, links outside the roots are not pulled).
    extra = [
        "--copy-links",
        f"--partial-dir={PARTIAL_DIRNAME}",
        f"--out-format={LANDED_MARK} %b %n",
    ]
    if unit.backup_dir is not None:
        extra += ["--backup", f"--backup-dir={unit.backup_dir}"]
    cut = argv.index("--") if "--" in argv else len(argv) - 2
    return [*argv[:cut], *extra, *argv[cut:]]


def transfer_unit(
    unit: Unit,
    dest: Path,
    target: Target,
    transport: Transport,
    opts: PullOptions,
    on_bytes: Callable[[int], None],
    note: NoteFn,
    on_landed: Callable[[str], None] | None = None,
    claim: ClaimFn | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Move one unit with bounded, backed-off retries; its failure is recorded, not raised.
    ``on_landed`` gets each file (relative to the unit) once it is in place, as rsync goes.
    ``claim``: the first attempt may be an rsync already started, fed the list on stdin.
    ``stop``: once set (Ctrl-C), the running rsync ends and no attempt follows."""
    stop = threading.Event() if stop is None else stop  # never set: the pull runs to its end
    (unit.local if unit.files else unit.local.parent).mkdir(parents=True, exist_ok=True)  # U13
    list_file: str | None = None
    listed = b""
    early = None
    with contextlib.ExitStack() as stack:
        if unit.files:
            listed = b"\0".join(os.fsencode(f) for f in unit.files) + b"\0"
            if claim is not None:
                early = claim(rsync_argv(unit, transport, opts, STDIN_LIST))
                unit.started_early = early is not None
            tmp = stack.enter_context(
                tempfile.NamedTemporaryFile(prefix="outlive-pull-", suffix=".list")
            )
            tmp.write(listed)
            tmp.flush()
            list_file = tmp.name
        argv = rsync_argv(unit, transport, opts, list_file)
        for attempt in range(1, opts.retries + 1):
            have = present_bytes(unit, dest)

            def progress(n: int, have: int = have) -> None:
                on_bytes(have + n)

            first, early = early, None  # the early rsync, for the first attempt only
            result = run_rsync(
                argv, opts.attempt_timeout_s, progress, on_landed, started_proc=first,
                feed=listed, stop=stop,
            )  # fmt: skip
            unit.attempts.append(result)
            if stop.is_set() and result.rc != 0:
                # Ctrl-C reached rsync and its ssh too: what they said is not a fault to
                # retry, and a new attempt would carry on the transfer the user stopped.
                unit.error = STOPPED_ERROR
                return
            if result.rc == 0:
                unit.ok, unit.error = True, None
                on_bytes(unit.size_bytes)
                return
            unit.error = result.error or f"rsync exit {result.rc}"
            if _DISK_FULL_RE.search(unit.error) or _no_room_left(unit, dest):
                unit.disk_full = True
                note(f"{unit.label}: this machine's disk is full ({unit.error}); not retried")
                return
            if _NO_RSYNC_RE.search(unit.error):
                unit.error = (
                    f"rsync is not installed on {target.name} ({unit.error}); install it there "
                    "(apt install rsync): a pull never falls back to scp (GEN3)"
                )
                note(f"{unit.label}: {unit.error}")
                return
            if result.rc not in RETRYABLE_RC and result.rc != WALL_TIMEOUT_RC:
                note(f"{unit.label}: {unit.error}; not retried")
                return
            if attempt == opts.retries:
                note(f"{unit.label}: gave up after {attempt} attempts ({unit.error})")
                return
            if result.rc in LINK_RC:
                # A master whose link died can hang every session it carries; start afresh (U17).
                with contextlib.suppress(TransportError, OSError, subprocess.TimeoutExpired):
                    transport.close()
            wait_s = backoff(attempt)
            note(f"{unit.label}: {unit.error}; attempt {attempt + 1} in {wait_s:.0f} s (U12)")
            if stop.wait(wait_s):
                unit.error = STOPPED_ERROR
                return


def _no_room_left(unit: Unit, dest: Path) -> bool:
    """Whether this machine's disk cannot hold what the unit still needs: the pull checked it
    could before it began, so the disk filled meanwhile. rsync does not always say so: when
    its receiver fails on a full disk, the sender's "Broken pipe" may be all that is printed."""
    try:
        free = free_bytes(unit.local)
    except OSError:
        return False
    return free < max(1, unit.size_bytes - present_bytes(unit, dest))


def present_bytes(unit: Unit, dest: Path) -> int:
    """Bytes of this unit's files that are already complete here (same size as on the box)."""
    here = sizes_here(dest, unit.paths)
    return sum(
        size for path, size in zip(unit.paths, unit.sizes, strict=True) if here.get(path) == size
    )


def sizes_here(dest: Path, paths: Iterable[str]) -> dict[str, int]:
    """The size (``lstat``) of each of ``paths`` (relative to ``dest``) that exists here, each
    directory read once: one ``lstat`` per file cost 2,000 small files 10 ms before their
    transfer, twice (the free space, then the unit's progress)."""
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        parent, _, name = path.rpartition("/")
        by_dir.setdefault(parent, []).append(name)
    out: dict[str, int] = {}
    for parent, names in by_dir.items():
        try:
            with os.scandir(os.path.join(dest, parent) if parent else dest) as listing:
                present = {entry.name: entry for entry in listing}
        except OSError:  # not here yet (a fresh pull), or not a directory
            continue
        for name in names:
            entry = present.get(name)
            if entry is None:
                continue
            with contextlib.suppress(OSError):
                out[f"{parent}/{name}" if parent else name] = entry.stat(
                    follow_symlinks=False
                ).st_size
    return out
