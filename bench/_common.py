"""Shared helpers for the benchmarks: a throwaway box, a project that targets it, timing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def _compiled_like_an_install() -> None:
    """Measure outlive as an installed copy runs: from bytecode. A source tree edited since
    its last run, in an environment with PYTHONDONTWRITEBYTECODE set (some CI and sandbox
    shells), recompiles each edited module on every CLI start (~4 ms for one module on a
    2-vCPU VM), which no installed copy does (pip and ``uv sync --compile-bytecode`` write the
    bytecode at install)."""
    import compileall

    import outlive

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(Path(outlive.__file__).parent), quiet=2)


_compiled_like_an_install()


def project_for(target: dict[str, str], name: str = "box") -> Path:
    proj = Path(tempfile.mkdtemp(prefix="outlive-bench-"))
    lines = [f"[targets.{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    return proj


def box_bench(doc: str, sub: str, reps_quick: int, reps_full: int) -> tuple[Any, Path, Path, int]:
    """Parse --quick/--box, start (or reuse) the testbed box and a project whose target `box`
    works in ``<box workdir>/<sub>``; returns (box, project, workdir on the box, repetitions)."""
    import argparse

    from outlive.testing import Box

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions (< 1 min)")
    ap.add_argument("--box", default="benchbox", help="testbed box name")
    args = ap.parse_args()
    box = Box.up(args.box)
    workdir = box.workdir / sub
    proj = project_for(dict(box.target, workdir=str(workdir), durable=str(box.durable / sub)))
    return box, proj, workdir, reps_quick if args.quick else reps_full


def outlive(proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OUTLIVE, *args], cwd=proj, capture_output=True, text=True, check=True)


def time_until_file(
    argv: list[str], path: Path, cwd: Path | None = None, timeout_s: float = 30.0
) -> float:
    """Seconds from starting ``argv`` until ``path`` exists (the command may still be running)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        return wait_for_file(path, timeout_s) - t0
    finally:
        _, err = proc.communicate(timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed: {err.decode(errors='replace')}")


def wait_for_file(path: Path, timeout_s: float = 30.0) -> float:
    deadline = time.perf_counter() + timeout_s
    while not path.exists():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.001)
    return time.perf_counter()


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(rows: list[tuple[str, float]], ref: float) -> str:
    width = max(len(r[0]) for r in rows)
    out = [f"{'what'.ljust(width)}  median s  ratio"]
    for name, value in rows:
        out.append(f"{name.ljust(width)}  {value:8.3f}  {value / ref:5.2f}x")
    return "\n".join(out)


def result_line(
    name: str, figures: dict[str, float], ratios: dict[str, float], goals: dict[str, bool]
) -> str:
    return json.dumps({"bench": name, "figures": figures, "ratios": ratios, "goals": goals})


def load_1min() -> float:
    """The 1-minute load average: figures from a loaded machine are marked with it."""
    return round(os.getloadavg()[0], 2)
