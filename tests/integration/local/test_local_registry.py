"""The registry under real concurrent use: ``run``, ``status`` and ``ls`` from many processes at
once never fail with "database is locked", and every launched run is recorded."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

# One process: `ops` operations cycling run / status / ls through the code the CLI calls.
LIFECYCLE_WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from outlive.lifecycle.runs import launch, status
    from outlive.session import Session

    project, worker, ops = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    errors, launched = [], 0
    for i in range(ops):
        cfg = Session.open(project)  # each operation as a fresh CLI call would do it
        try:
            op = (worker + i) % 3
            if op == 0:
                launch(cfg, "local", ["true"], f"w{worker}-{i}")
                launched += 1
            elif op == 1:
                status(cfg)
            else:
                cfg.store.all()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"errors": errors, "launched": launched}))
    """
)


def _wal(project) -> str:
    conn = sqlite3.connect(str(project.dir / ".outlive" / "registry.db"))
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    "ops", [pytest.param(6, id="8x6"), pytest.param(20, id="8x20", marks=pytest.mark.slow)]
)
def test_run_status_and_ls_from_many_processes_never_hit_database_locked(project, ops):
    workers = 8
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LIFECYCLE_WORKER, str(project.dir), str(w), str(ops)],
            cwd=project.dir,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    launched = 0
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        result = json.loads(out)
        assert result["errors"] == [], result["errors"]
        launched += result["launched"]

    listed = json.loads(project.cli("ls", "--json").stdout)["runs"]
    assert len(listed) == launched
    assert _wal(project) == "wal"


@pytest.mark.slow
def test_the_cli_from_many_processes_at_once_never_hits_database_locked(project):
    """The same through the console script: 8 processes x 6 commands (run, status, ls)."""
    workers, ops = 8, 6

    def worker(w: int) -> list[str]:
        failures = []
        for i in range(ops):
            args = [
                ("run", "--json", "--name", f"c{w}-{i}", "--", "true"),
                ("status", "--json"),
                ("ls", "--json"),
            ][(w + i) % 3]
            done = project.cli(*args, rc=None, timeout_s=180)
            if done.returncode != 0 or "locked" in done.stderr:
                failures.append(f"outlive {' '.join(args)} -> {done.returncode}: {done.stderr}")
            else:
                json.loads(done.stdout)  # still exactly one JSON document under contention
        return failures

    with ThreadPoolExecutor(max_workers=workers) as pool:
        failures = [f for fs in pool.map(worker, range(workers)) for f in fs]
    assert failures == []
    listed = json.loads(project.cli("ls", "--json").stdout)["runs"]
    assert len(listed) == sum(1 for w in range(workers) for i in range(ops) if (w + i) % 3 == 0)
    assert _wal(project) == "wal"
