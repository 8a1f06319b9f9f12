"""Status at scale for ``status_latency.py``: 10 targets x 100 runs, warm and cold, and a look
while one target's link is cut.

Each target is its own testbed box (``scale0`` .. ``scale9`` by default: a real sshd in its own
network namespace, so each has its own address and its own ControlMaster). Per target, 98 runs have
ended (``true``) and 2 are running (``sleep``), as on a long-lived project.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import OUTLIVE, median, outlive, timed

TARGETS = 10
RUNS_PER_TARGET = 100
RUNNING_PER_TARGET = 2


def scale_project(boxes: list[Any]) -> Path:
    import tempfile

    proj = Path(tempfile.mkdtemp(prefix="outlive-bench-scale-"))
    sub = f"scale-{uuid.uuid4().hex[:8]}"  # a fresh workdir: no runs of earlier benches adopted
    lines = []
    for i, box in enumerate(boxes):
        target = dict(box.target, workdir=str(box.workdir / sub), durable=str(box.durable / sub))
        lines.append(f"[targets.t{i}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    (proj / "job.py").write_text("print('ok')\n")
    return proj


def fill(proj: Path) -> list[str]:
    """Launch the runs (targets in parallel, in-process: 1000 CLI starts would take minutes);
    returns the ids of the running ones, to cancel at the end."""
    from outlive.lifecycle.runs import launch
    from outlive.session import Session

    def one_target(i: int) -> list[str]:
        session = Session.open(proj)
        running = []
        for k in range(RUNS_PER_TARGET):
            live = k < RUNNING_PER_TARGET
            cmd = ["sleep", "600"] if live else ["true"]
            got = launch(session, f"t{i}", cmd, f"r{k}")
            if live:
                running.append(got.run_id)
        return running

    with ThreadPoolExecutor(max_workers=TARGETS) as pool:
        return [rid for ids in pool.map(one_target, range(TARGETS)) for rid in ids]


def look_once(proj: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = subprocess.run(
        [OUTLIVE, "status", "--json"], cwd=proj, env=env, capture_output=True, text=True
    )
    runs: list[dict[str, Any]] = json.loads(out.stdout)["runs"]
    return runs


def per_target_finish_s(proj: Path, pool: Any) -> tuple[float, dict[str, float], list[Any]]:
    """One look in-process over warm channels (as the daemon makes it), with the time at which
    each target's probe came back, from the start of the look."""
    from outlive.lifecycle import runs as lr
    from outlive.session import Session

    t0 = time.perf_counter()
    done: dict[str, float] = {}
    lock = threading.Lock()
    real = lr._probe_target

    def timed_probe(session: Any, target_name: str, *a: Any, **kw: Any) -> Any:
        try:
            return real(session, target_name, *a, **kw)
        finally:
            with lock:
                done[target_name] = time.perf_counter() - t0

    lr._probe_target = timed_probe  # type: ignore[assignment]
    try:
        result = lr.status(Session.open(proj, pool=pool))
    finally:
        lr._probe_target = real
    return time.perf_counter() - t0, done, result


def measure(reps: int, prefix: str = "scale") -> dict[str, Any]:
    from outlive.agent.channel import ChannelPool
    from outlive.lifecycle.runs import LOOK_TIMEOUT_S
    from outlive.testing import Box

    t0 = time.perf_counter()
    boxes = [Box.up(f"{prefix}{i}") for i in range(TARGETS)]
    proj = scale_project(boxes)
    running = fill(proj)
    setup_s = time.perf_counter() - t0
    cold_env = dict(os.environ, OUTLIVE_NO_DAEMON="1")
    try:
        rows = look_once(proj)  # starts the daemon
        assert len(rows) == TARGETS * RUNS_PER_TARGET, len(rows)
        warm_daemon(proj)
        warm = [timed(lambda: look_once(proj)) for _ in range(reps)]
        cold = [timed(lambda: look_once(proj, cold_env)) for _ in range(reps)]
        pool = ChannelPool()
        per_target_finish_s(proj, pool)  # opens the channels
        _, base_done, _ = per_target_finish_s(proj, pool)
        cut_box = boxes[-1]
        cut_box.cut()
        try:
            cut_total, cut_done, result = per_target_finish_s(proj, pool)
            t1 = time.perf_counter()
            cut_rows = look_once(proj)  # through the daemon, whose channel to the box hangs
            cli_cut_s = time.perf_counter() - t1
        finally:
            cut_box.restore()
            pool.close()
    finally:
        for rid in running:
            subprocess.run([OUTLIVE, "cancel", rid], cwd=proj, capture_output=True)
    cut_name = f"t{TARGETS - 1}"
    healthy_base = max(v for k, v in base_done.items() if k != cut_name)
    healthy_cut = max(v for k, v in cut_done.items() if k != cut_name)
    rows_right = _rows_right(cut_rows, cut_name) and _rows_right(
        [r.to_json() for r in result], cut_name
    )
    isolated = (
        rows_right
        and cut_total <= LOOK_TIMEOUT_S + 2.0
        and healthy_cut <= max(2 * healthy_base, healthy_base + 0.25)
    )
    return {
        "setup_s": setup_s,
        "warm_s": median(warm),
        "cold_s": median(cold),
        "healthy_targets_uncut_s": healthy_base,
        "healthy_targets_during_cut_s": healthy_cut,
        "cut_target_s": cut_done[cut_name],
        "look_during_cut_s": cut_total,
        "cli_look_during_cut_s": cli_cut_s,
        "look_timeout_s": LOOK_TIMEOUT_S,
        "rows_right": rows_right,
        "isolated": isolated,
        "unreachable_sentence": next(
            (r.get("unreachable") for r in cut_rows if r.get("stale")), None
        ),
    }


def warm_daemon(proj: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        daemons = json.loads(outlive(proj, "daemon", "status", "--json").stdout)["daemons"]
        if any(d["channels"] >= TARGETS for d in daemons):
            return
        look_once(proj)
    raise TimeoutError("the daemon did not open a channel per target")


def _rows_right(rows: list[dict[str, Any]], cut_name: str) -> bool:
    """The healthy targets' rows are fresh; the cut target's live runs are stale (unreachable,
    last seen running) and its ended runs are shown as they ended (the registry's rows)."""
    cut = [r for r in rows if r["target"] == cut_name]
    healthy = [r for r in rows if r["target"] != cut_name]
    ended = ("succeeded", "failed", "cancelled")
    return (
        len(rows) == TARGETS * RUNS_PER_TARGET
        and not any(r.get("stale") for r in healthy)
        and all(bool(r.get("stale")) != (r["state"] in ended) for r in cut)
        and any(r.get("stale") and r.get("unreachable") for r in cut)
    )
