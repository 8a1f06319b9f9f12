"""The run verbs: ``launch``, ``probe``, ``cancel`` and ``tail``, each routed through the backend
dispatch table by the run's own ``run.json`` (or, for ``launch``, by the request)."""

from __future__ import annotations

import base64
import os
import time
from typing import Dict, List

from outlive import wire

from . import backends
from .common import Rec
from .records import read_spec

_REQUIRED = ("run_id", "name", "command", "workdir")  # checked, with their own messages, later


def verb_launch(req: Rec) -> Rec:
    """Start a run; an old client names its backend ``detach`` (setsid, tmux)."""
    doc = dict(req)
    for key in _REQUIRED:
        doc.setdefault(key, None)
    request = wire.LaunchRequest.from_json(doc)
    return backends.entry(str(request.backend)).launch(request)


def _unknown(run_dir: str, error: str) -> Rec:
    return wire.RunProbe(run_dir=run_dir, state="unknown", error=error).to_json()


def probe_runs(run_dirs: List[str], boot_now: str | None, now: float) -> List[Rec]:
    """The state of many runs, in the order asked: each backend probes all its runs at once
    (Slurm asks the scheduler once). A run whose records cannot be read is ``unknown`` with an
    error; it never fails the probe of the others."""
    found: Dict[str, Rec] = {}
    groups: Dict[str, Dict[str, Rec]] = {}
    for run_dir in run_dirs:
        spec = read_spec(run_dir)
        if spec is None:
            found[run_dir] = _unknown(run_dir, f"no readable run.json in {run_dir}")
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
    run_dirs = [os.path.expanduser(str(d)) for d in req.get("run_dirs") or []]
    return {"runs": probe_runs(run_dirs, boot_now, now), "boot_id": boot_now, "now": now}


def verb_cancel(req: Rec) -> Rec:
    run_dir = os.path.expanduser(str(req["run_dir"]))
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
    """Log bytes from ``offset`` (or the last ``lines`` lines), so a follower never duplicates."""
    run_dir = os.path.expanduser(str(req["run_dir"]))
    path = os.path.join(run_dir, wire.STDOUT_LOG)
    max_bytes = int(req.get("max_bytes", 1 << 20))
    ended = _ended(run_dir)
    try:
        size = os.path.getsize(path)
    except OSError:
        return {"data_b64": "", "offset": 0, "size": 0, "ended": ended}
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
    return {
        "data_b64": base64.b64encode(data).decode("ascii"),
        "offset": end,
        "size": size,
        "ended": ended,
    }
