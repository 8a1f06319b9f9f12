"""Crash consistency: SIGKILL a process that saves checkpoints in a loop, at random moments, and
count how often the latest checkpoint is left unloadable or missing.

Compared, side by side:
  outlive       outlive.Checkpointer.save, async (the default): snapshot, then a background
                persist (tmp, fsync, rename, fsync dir); CRC-32 verified on load
  outlive_sync  the same with sync=True: save() returns once the file is committed
  pickle        pickle.dump straight to latest.pkl (what most training scripts do)
  numpy         numpy.save straight to latest.npy
  torch         torch.save straight to latest.pt (only when torch is importable)

    python bench/crash_consistency.py [--quick] [--kills N]

Each writer is forked from a per-method "zygote" process that has already imported its libraries,
so a kill costs milliseconds and the kill moment is measured from the writer's first save, not from
interpreter start-up. The writers do nothing but save, so the rates below are per kill that lands
during saving; in a real job multiply by the share of time spent saving. Prints a table, then one
JSON line (the last line).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NoReturn, Tuple

REPO_SRC = Path(__file__).resolve().parents[1] / "src"
if str(REPO_SRC) not in sys.path:
    sys.path.insert(0, str(REPO_SRC))

from outlive import Checkpointer  # noqa: E402
from outlive.errors import CheckpointError  # noqa: E402

KILLS_DEFAULT = 500
KILLS_QUICK = 100
KILL_WINDOW_S = 0.05  # a kill lands uniformly within this long after the writer's "ready"
SIZE_RANGE_MB = (1, 4)


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- the four ways of saving ------------------------------------------------------------------


def _state(step: int, blob: bytes, digest: str) -> Dict[str, Any]:
    return {"step": step, "blob": blob, "sha256": digest}


_writers: Dict[Tuple[int, str, bool], Checkpointer] = {}


def _writer(directory: Path, sync: bool) -> Checkpointer:
    """One Checkpointer per writer process, as a training job has (so async saves pipeline)."""
    key = (os.getpid(), str(directory), sync)
    if key not in _writers:
        _writers[key] = Checkpointer(directory, keep_last=3, handle_signals=False, sync=sync)
    return _writers[key]


def save_outlive(directory: Path, step: int, blob: bytes, digest: str) -> None:
    _writer(directory, sync=False).save(_state(step, blob, digest), step=step)


def save_outlive_sync(directory: Path, step: int, blob: bytes, digest: str) -> None:
    _writer(directory, sync=True).save(_state(step, blob, digest), step=step)


def save_pickle(directory: Path, step: int, blob: bytes, digest: str) -> None:
    with open(directory / "latest.pkl", "wb") as f:
        pickle.dump(_state(step, blob, digest), f, protocol=4)


def save_numpy(directory: Path, step: int, blob: bytes, digest: str) -> None:
    import numpy as np

    array = np.frombuffer(step.to_bytes(8, "big") + bytes.fromhex(digest) + blob, dtype=np.uint8)
    np.save(directory / "latest.npy", array)


def save_torch(directory: Path, step: int, blob: bytes, digest: str) -> None:
    import torch  # type: ignore[import-not-found, unused-ignore]

    tensor = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    torch.save({"step": step, "blob": tensor, "sha256": digest}, directory / "latest.pt")


def _verified(step: object, blob: bytes, digest: object) -> int | None:
    ok = isinstance(step, int) and hashlib.sha256(blob).hexdigest() == digest
    return step if ok else None  # type: ignore[return-value]


# A check returns ("ok", step), ("missing", None) or ("corrupt", None).
Check = Tuple[str, int | None]


def check_outlive(directory: Path) -> Check:
    try:
        restored = Checkpointer(directory, handle_signals=False).load_latest()
    except CheckpointError:
        return "corrupt", None
    if restored is None:
        return "missing", None
    state = restored.state
    step = _verified(state["step"], state["blob"], state["sha256"])
    return ("ok", step) if step == restored.step else ("corrupt", None)


def _check_file(path: Path, load: Callable[[Path], int | None]) -> Check:
    if not path.exists():
        return "missing", None
    try:
        step = load(path)
    except Exception:  # whatever a torn file makes the loader raise
        return "corrupt", None
    return ("ok", step) if step is not None else ("corrupt", None)


def check_pickle(directory: Path) -> Check:
    def load(path: Path) -> int | None:
        with open(path, "rb") as f:
            state = pickle.load(f)
        return _verified(state["step"], state["blob"], state["sha256"])

    return _check_file(directory / "latest.pkl", load)


def check_numpy(directory: Path) -> Check:
    import numpy as np

    def load(path: Path) -> int | None:
        raw = np.load(path).tobytes()
        return _verified(int.from_bytes(raw[:8], "big"), raw[40:], raw[8:40].hex())

    return _check_file(directory / "latest.npy", load)


def check_torch(directory: Path) -> Check:
    import torch  # type: ignore[import-not-found, unused-ignore]

    def load(path: Path) -> int | None:
        state = torch.load(path, weights_only=True)
        return _verified(state["step"], state["blob"].numpy().tobytes(), state["sha256"])

    return _check_file(directory / "latest.pt", load)


METHODS: Dict[str, Tuple[Callable[[Path, int, bytes, str], None], Callable[[Path], Check]]] = {
    "outlive": (save_outlive, check_outlive),
    "outlive_sync": (save_outlive_sync, check_outlive),
    "pickle": (save_pickle, check_pickle),
    "numpy": (save_numpy, check_numpy),
    "torch": (save_torch, check_torch),
}


# -- the zygote: forks writers on request --------------------------------------------------


def zygote(method: str, directory: Path) -> NoReturn:
    """Read "START_STEP SIZE_BYTES" lines; fork a writer for each and report when it died."""
    save = METHODS[method][0]
    save(directory / "warmup", 0, b"x", hashlib.sha256(b"x").hexdigest())  # import lazily now
    for writer in _writers.values():
        writer.flush()
    shutil.rmtree(directory / "warmup", ignore_errors=True)
    print("zygote-ready", flush=True)
    for line in sys.stdin:
        start_step, size = (int(x) for x in line.split())
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                blob = os.urandom(size)
                digest = hashlib.sha256(blob).hexdigest()
                sys.stdout.write(f"ready {os.getpid()}\n")
                sys.stdout.flush()
                step = start_step
                while True:
                    step += 1
                    save(directory, step, blob, digest)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        print(f"dead {pid} {status}", flush=True)
    sys.exit(0)


def run_method(method: str, kills: int, rng: random.Random, root: Path) -> Dict[str, Any]:
    directory = root / method
    directory.mkdir()
    (directory / "warmup").mkdir()
    check = METHODS[method][1]
    proc = subprocess.Popen(
        [sys.executable, __file__, "--zygote", method, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    counts: Dict[str, Any] = {
        "ok": 0,
        "corrupt": 0,
        "missing": 0,
        "regressed": 0,
        "before_first_save": 0,
        "mid_write": 0,
    }
    last_good = 0
    started_s = time.monotonic()
    try:
        if proc.stdout.readline().strip() != "zygote-ready":
            raise RuntimeError(f"{method}: the zygote did not start")
        for _ in range(kills):
            size = rng.randint(*SIZE_RANGE_MB) * 1024 * 1024
            proc.stdin.write(f"{last_good} {size}\n")
            proc.stdin.flush()
            ready = proc.stdout.readline().split()
            if not ready or ready[0] != "ready":
                raise RuntimeError(f"{method}: the writer did not start: {ready}")
            time.sleep(rng.uniform(0.0, KILL_WINDOW_S))
            writer_pid = int(ready[1])
            os.kill(writer_pid, signal.SIGKILL)
            proc.stdout.readline()  # "dead PID STATUS"
            # outlive's tmp file names carry the writer's pid: evidence the kill tore a write.
            counts["mid_write"] += any(directory.glob(f".*.tmp-{writer_pid}-*"))
            status, step = check(directory)
            if status == "missing" and last_good == 0:
                counts["before_first_save"] += 1
                continue
            if status == "ok" and step is not None and step < last_good:
                status = "regressed"  # a committed save was lost
            counts[status] += 1
            # A job that finds no good checkpoint starts over, as the user's script would.
            last_good = step if status == "ok" and step is not None else 0
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    counts["kills"] = kills
    counts["bad"] = counts["corrupt"] + counts["missing"] + counts["regressed"]
    counts["elapsed_s"] = round(time.monotonic() - started_s, 1)
    return counts


def save_ms(method: str, root: Path, size: int = 2 * 1024 * 1024, repeats: int = 10) -> float:
    """Median wall time of one save of ``size`` bytes, in this process, without kills."""
    directory = root / f"timing-{method}"
    directory.mkdir()
    save = METHODS[method][0]
    blob = os.urandom(size)
    digest = hashlib.sha256(blob).hexdigest()
    times = []
    for step in range(1, repeats + 1):
        t0 = time.perf_counter()
        save(directory, step, blob, digest)
        times.append(time.perf_counter() - t0)
        for writer in _writers.values():
            writer.flush()  # async: the loop is blocked only for the save() call timed above
    return round(sorted(times)[len(times) // 2] * 1000, 2)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{KILLS_QUICK} kills per method")
    parser.add_argument("--kills", type=int, default=None, help="kills per method (default 500)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--zygote", nargs=2, metavar=("METHOD", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zygote:
        zygote(args.zygote[0], Path(args.zygote[1]))

    kills = args.kills or (KILLS_QUICK if args.quick else KILLS_DEFAULT)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    methods = ["outlive", "outlive_sync", "pickle"]
    for method, module in (("numpy", "numpy"), ("torch", "torch")):
        if _available(module):
            methods.append(method)
        else:
            print(f"note: {module} is not importable here; the {method} row is skipped")

    root = Path(tempfile.mkdtemp(prefix="outlive-crash-", dir=args.dir))
    try:
        results = {}
        for method in methods:
            rng = random.Random(f"{seed}-{method}")
            results[method] = run_method(method, kills, rng, root)
            results[method]["save_ms"] = save_ms(method, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    header = f"{'method':<13} {'kills':>6} {'bad':>5} {'corrupt':>8} {'missing':>8} {'lost':>5}"
    print(f"SIGKILL at random moments of a save loop, payload {SIZE_RANGE_MB} MiB, seed {seed}")
    print(header + f" {'bad %':>6} {'save ms':>8} {'time s':>7}")
    for method, r in results.items():
        print(
            f"{method:<13} {r['kills']:>6} {r['bad']:>5} {r['corrupt']:>8} {r['missing']:>8} "
            f"{r['regressed']:>5} {100 * r['bad'] / r['kills']:>6.1f} {r['save_ms']:>8.2f} "
            f"{r['elapsed_s']:>7.1f}"
        )
    print("bad = latest checkpoint unloadable, failing its checksum, missing, or older than a")
    print("save that had completed (lost). save ms = median time one 2 MiB save() blocks the")
    print("caller, no kill (async: the snapshot; the persist runs on in the background).")
    print("The writers do nothing but save, so a rate is per kill that lands during saving.")
    for name in ("outlive", "outlive_sync"):
        print(
            f"{results[name]['mid_write']} of the {name} kills provably landed mid-write "
            "(a torn tmp file was left); none of them reached load_latest()."
        )

    figures: Dict[str, Any] = {"kills_per_method": kills, "seed": seed}
    figures["outlive_kills_mid_write"] = results["outlive"]["mid_write"]
    figures["outlive_sync_kills_mid_write"] = results["outlive_sync"]["mid_write"]
    ratios: Dict[str, float] = {}
    for method, r in results.items():
        for key in ("bad", "corrupt", "missing", "regressed", "save_ms"):
            figures[f"{method}_{key}"] = r[key]
        ratios[f"{method}_bad_fraction"] = round(r["bad"] / r["kills"], 4)
        if not method.startswith("outlive"):
            ratios[f"outlive_save_time_over_{method}"] = round(
                results["outlive"]["save_ms"] / max(r["save_ms"], 1e-6), 2
            )
    goals = {
        "outlive_zero_corrupt": results["outlive"]["bad"] == 0,
        "outlive_sync_zero_corrupt": results["outlive_sync"]["bad"] == 0,
    }
    print(
        json.dumps(
            {"bench": "crash_consistency", "figures": figures, "ratios": ratios, "goals": goals}
        )
    )
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
