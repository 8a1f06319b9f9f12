"""Processes that open a registry nobody has made yet, all at once (two `outlive run` in a fresh
project): each must get it, none a "database is locked" refusal. SQLite answers the second
switch to WAL with "locked" at once, without its busy wait, so the store waits for it itself."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from outlive.store import Store

PROCS = 4
ROUNDS = 15


def _open(state_dir: str, start: mp.synchronize.Barrier, out: mp.Queue[str]) -> None:
    start.wait()
    try:
        Store(Path(state_dir)).all()
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_processes_making_a_fresh_registry_at_once_all_get_it(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    failures = []
    for i in range(ROUNDS):
        state_dir = tmp_path / f"p{i}" / ".outlive"
        state_dir.mkdir(parents=True)
        start, out = ctx.Barrier(PROCS), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(str(state_dir), start, out)) for _ in range(PROCS)]
        for p in procs:
            p.start()
        got = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        failures += [g for g in got if g != "ok"]
    assert failures == []
