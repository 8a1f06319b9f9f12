"""The run verbs: ``launch``, ``probe``, ``cancel`` and ``tail``, each routed through the backend
dispatch table by the run's own ``run.json`` (or, for ``launch``, by the request)."""

from __future__ import annotations

import base64
import contextlib
import os
import time

from outlive import wire

from . import backends
from .common import AgentError, Rec, expand
from .records import read_spec

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Dict, List, Set, Tuple

_REQUIRED = ("run_id", "name", "command", "workdir")  # checked, with their own messages, later
NAMES_DIRNAME = ".outlive-names"  # <durable>/.outlive-names/<name>: the run that holds the name
_HOLDING = (wire.State.PENDING.value, wire.State.RUNNING.value, wire.State.REQUEUED.value)


def verb_launch(req: Rec) -> Rec:
    """Start a run; an old client names its backend ``detach`` (setsid, tmux). The run's name
    (each cell's, for an array) is locked on this box for the whole launch, so two clients
    launching the same name get one winner, and a name held by a live run is refused."""
    doc = dict(req)
    for key in _REQUIRED:
        doc.setdefault(key, None)
    request = wire.LaunchRequest.from_json(doc)
    launch = backends.entry(str(request.backend)).launch  # an unknown backend creates nothing
    held: List[int] = []
    try:
        claims = _claims(request)
        for name, run_id in claims:
            held.append(_claim_name(request, name, run_id))
        missing = _missing_programs(request) if claims else []  # before the job can start
        reply = launch(request)
        if missing:
            reply = dict(reply, missing_programs=missing)  # `run` warns: same round trip
        return reply
    finally:
        for fd in held:
            if fd >= 0:
                os.close(fd)  # releases the flock


def _missing_programs(request: wire.LaunchRequest) -> List[Rec]:
    from .programs import missing_programs

    cells = request.cells if isinstance(request.cells, list) else []
    commands = [request.command] + [c["command"] for c in cells if isinstance(c, dict)]
    commands = [c for c in commands if isinstance(c, list) and c]
    env = request.env if isinstance(request.env, dict) else {}
    return missing_programs(commands, env, str(request.workdir))


def _claims(request: wire.LaunchRequest) -> List[Tuple[str, str]]:
    """(name, run id) of each run the request starts, sorted (a fixed lock order)."""
    command = request.command
    if (
        wire.run_id_problem(request.run_id) is not None
        or not isinstance(request.workdir, str)
        or not isinstance(command, list)
        or not command
        or not all(isinstance(a, str) and "\x00" not in a for a in command)
    ):
        return []  # refused with its own message by the launch, which creates nothing
    if isinstance(request.cells, list):
        names = [c.get("name") if isinstance(c, dict) else None for c in request.cells]
        pairs = [(n, f"{request.run_id}-{i}") for i, n in enumerate(names)]
    else:
        pairs = [(request.name, request.run_id)]
    if not all(isinstance(n, str) and wire.name_problem(n) is None for n, _ in pairs):
        return []
    return sorted((str(n), r) for n, r in pairs)


def _claim_name(request: wire.LaunchRequest, name: str, run_id: str) -> int:
    """Lock ``<durable>/.outlive-names/<name>``, refuse if the run it names still pends or runs,
    else write ours in it; return the locked fd (-1 where this filesystem cannot lock)."""
    import fcntl
    import json

    workdir = expand(str(request.workdir))
    if not os.path.isdir(workdir):
        return -1  # the launch refuses it with its own message
    state_dir = os.path.join(workdir, wire.STATE_DIRNAME)
    durable = expand(str(request.durable or os.path.join(state_dir, "durable")))
    names_dir = os.path.join(durable, NAMES_DIRNAME)
    os.makedirs(names_dir, exist_ok=True)
    path = os.path.join(names_dir, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        # Waits while another launch of this name runs; on a filesystem without locks the owner
        # check below still stops a later launch.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        raw = b""
        while True:
            chunk = os.pread(fd, 65536, len(raw))
            if not chunk:
                break
            raw += chunk
        try:
            owner = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except ValueError:
            owner = None
        if isinstance(owner, dict) and owner.get("run_id") != run_id:
            state = _holding_state(str(owner.get("run_dir") or ""))
            if state is not None:
                other = owner.get("run_id")
                raise AgentError(
                    f"run name {name!r} is held by run {other} ({state}) on this target; cancel "
                    f"it with `outlive cancel {other}` or choose another --name",
                    kind="name_busy",
                )
        run_dir = os.path.join(state_dir, wire.RUNS_DIRNAME, run_id)
        data = json.dumps({"run_id": run_id, "run_dir": run_dir, "pid": os.getpid()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _holding_state(run_dir: str) -> str | None:
    """The state of the run that holds a name if it still pends or runs, else None. A process
    run whose launch never reported (run.json, no launch.json) and whose lock is free died in
    its launch: it holds nothing."""
    if not run_dir or not os.path.isdir(run_dir):
        return None
    from .procfs import boot_id

    state = probe_one(run_dir, boot_id(), time.time()).get("state")
    if state not in _HOLDING:
        return None
    if state == wire.State.PENDING.value and not any(
        os.path.exists(os.path.join(run_dir, f)) for f in (wire.LAUNCH_JSON, wire.SLURM_JSON)
    ):
        return None
    return str(state)


def _unknown(run_dir: str, error: str) -> Rec:
    return wire.RunProbe(run_dir=run_dir, state="unknown", error=error).to_json()


def _without_records(run_dir: str, error: str) -> Rec:
    """A run whose records are gone or unreadable (its directory deleted by hand, a disk
    that lost it): ``unknown``, unless its job is still seen running on this box, which a
    status must never call ended."""
    from .procfs import processes_of_run

    run_id = os.path.basename(run_dir.rstrip("/"))
    pids = [pid for pid, _ in processes_of_run(run_id)]
    if not pids:
        return _unknown(run_dir, error)
    shown = ", ".join(str(p) for p in pids[:8]) + (" ..." if len(pids) > 8 else "")
    return wire.RunProbe(
        run_dir=run_dir,
        state=wire.State.RUNNING.value,
        run_id=run_id,
        pid=pids[0],
        warning=(
            f"{error}, but its job still runs on this box (pid {shown}): its log, exit record "
            "and heartbeat are lost; `outlive cancel` stops it"
        ),
    ).to_json()


def probe_runs(run_dirs: List[str], boot_now: str | None, now: float) -> List[Rec]:
    """The state of many runs, in the order asked: each backend probes all its runs at once
    (Slurm asks the scheduler once). A run whose records cannot be read is ``unknown`` with an
    error; it never fails the probe of the others."""
    found: Dict[str, Rec] = {}
    groups: Dict[str, Dict[str, Rec]] = {}
    for run_dir in run_dirs:
        spec = read_spec(run_dir)
        if spec is None:
            found[run_dir] = _without_records(run_dir, f"no readable run.json in {run_dir}")
            continue
        backend = backends.backend_of(spec)
        if backends.lookup(backend) is None:
            found[run_dir] = _unknown(
                run_dir,
                f"run.json in {run_dir} names backend {backend!r}, which this agent does not "
                f"know ({', '.join(wire.BACKENDS)}); upgrade outlive",
            )
            continue
        groups.setdefault(backend, {})[run_dir] = spec
    for backend, runs in groups.items():
        found.update(backends.entry(backend).probe(runs, boot_now, now))
    return [found[run_dir] for run_dir in run_dirs]


def probe_one(run_dir: str, boot_now: str | None, now: float) -> Rec:
    return probe_runs([run_dir], boot_now, now)[0]


def verb_probe(req: Rec) -> Rec:
    from .procfs import boot_id

    now = time.time()
    boot_now = boot_id()
    run_dirs = [expand(str(d)) for d in req.get("run_dirs") or []]
    reply: Rec = {"runs": probe_runs(run_dirs, boot_now, now), "boot_id": boot_now, "now": now}
    if req.get("adopt_under") is not None:
        known = set(run_dirs) | {expand(str(d)) for d in req.get("known_dirs") or []}
        reply["found"] = _found_under(str(req["adopt_under"]), known, boot_now, now)
    return reply


def _found_under(workdir: str, known: Set[str], boot_now: str | None, now: float) -> List[Rec]:
    """Runs under ``<workdir>/.outlive/runs/`` that the client did not ask about (a launch whose
    record never reached its registry): what their run.json says, and their probe."""
    runs_dir = os.path.join(expand(workdir), wire.STATE_DIRNAME, wire.RUNS_DIRNAME)
    try:
        entries = sorted(os.listdir(runs_dir))
    except OSError:
        return []
    fresh = [os.path.join(runs_dir, e) for e in entries]
    fresh = [d for d in fresh if d not in known and os.path.isdir(d)]
    out = []
    specs = {d: read_spec(d) for d in fresh}
    fresh = [d for d in fresh if specs[d] is not None]
    probes = probe_runs(fresh, boot_now, now)
    for i, run_dir in enumerate(fresh):
        spec, probed = specs[run_dir] or {}, probes[i]
        out.append(
            {
                "run_dir": run_dir,
                "run_id": spec.get("run_id"),
                "name": spec.get("name"),
                "target": spec.get("target"),
                "command": spec.get("command"),
                "ckpt_dir": spec.get("ckpt_dir"),
                "created_at": spec.get("created_at"),
                "project_id": spec.get("project_id"),
                "probe": probed,
            }
        )
    return out


def verb_cancel(req: Rec) -> Rec:
    run_dir = expand(str(req["run_dir"]))
    grace_s = float(req.get("grace_s", 30))
    spec = read_spec(run_dir) or {}
    return backends.entry(backends.backend_of(spec)).cancel(run_dir, spec, grace_s)


def _ended(run_dir: str) -> bool:
    if os.path.exists(os.path.join(run_dir, wire.EXIT_JSON)):
        return True
    spec = read_spec(run_dir)
    found = backends.lookup(backends.backend_of(spec)) if spec is not None else None
    return found is not None and found.ended(run_dir, spec or {})


def verb_tail(req: Rec) -> Rec:
    """Log bytes from ``offset`` (or the last ``lines`` lines), so a follower never duplicates.
    ``file`` picks another of the run's append-only files (``wire.TAIL_FILES``: progress).
    The bytes come as ``data_b64``, or, asked with ``raw``, as ``data`` (bytes), which the reply's
    writer sends unencoded after the JSON header (``verbs.framed``): a 9 MB progress file costs
    no base64 and no JSON string of 12 MB at either end. Reading the progress file's frames
    (``wire.PROGRESS_BIN``), the reply also says how long the progress file was before they were
    read (``lines_size``): the frames' rows should hold its lines up to there."""
    run_dir = expand(str(req["run_dir"]))
    name = str(req.get("file") or wire.STDOUT_LOG)
    if name not in wire.TAIL_FILES:
        raise AgentError("tail reads only " + ", ".join(wire.TAIL_FILES))
    path = os.path.join(run_dir, name)
    max_bytes = int(req.get("max_bytes", 1 << 20))
    ended = _ended(run_dir)
    facts: Rec = {"ended": ended}
    if name == wire.PROGRESS_BIN:
        try:
            facts["lines_size"] = os.path.getsize(os.path.join(run_dir, wire.PROGRESS_JSONL))
        except OSError:
            facts["lines_size"] = 0
    try:
        size = os.path.getsize(path)
    except OSError:
        return _tail_reply(req, b"", 0, 0, facts)
    offset = req.get("offset")
    with open(path, "rb") as f:
        if offset is None:
            want = int(req.get("lines", 10))
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(size - start)
            if want >= 0:
                # Cut at the start of the last `want` lines, keeping the bytes exactly as they
                # are: stripping newlines first dropped trailing blank lines, and `logs -f`
                # (which continues from `end`) then never printed them.
                pos = len(data) - 1 if data.endswith(b"\n") else len(data)
                for _ in range(want):
                    pos = data.rfind(b"\n", 0, pos)
                    if pos < 0:
                        break
                data = data[pos + 1 :] if want else b""
            end = size
        else:
            offset = min(int(offset), size)
            f.seek(offset)
            data = f.read(max_bytes)
            end = offset + len(data)
    return _tail_reply(req, data, end, size, facts)


def _tail_reply(req: Rec, data: bytes, end: int, size: int, facts: Rec) -> Rec:
    doc: Rec = {"offset": end, "size": size, **facts}
    if req.get("raw"):
        doc["data"] = data
    else:
        doc["data_b64"] = base64.b64encode(data).decode("ascii")
    return doc
