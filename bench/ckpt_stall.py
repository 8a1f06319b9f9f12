"""Checkpoint stall: how long the training loop is blocked per save of a ~1 GiB state.

Compared, side by side, in one process on the same state (a dict of float32 tensors):
  copy floor     {k: v.clone()}: one plain in-memory copy of the state (fresh memory)
  warm copy      copy_ into buffers allocated before (the memcpy itself)
  outlive async  Checkpointer.save(): snapshot into CPU memory, persist in the background
  outlive sync   Checkpointer.save(sync=True): returns once the file is committed
  torch.save     torch.save(state, path), synchronous, as most training scripts do
  dcp async      torch.distributed.checkpoint.async_save (single process, gloo group)

Then the overhead at the tuned cadence: a loop of in-place "optimizer steps" over the state runs
with and without outlive saves; the extra loop time per save (stall plus the background persist
competing for CPU and memory bandwidth) divided by Daly's interval for the measured persist time
and an MTBF (--mtbf-s, default one hour: a spot-like interruption rate) is the share of training
time checkpointing costs.

    python bench/ckpt_stall.py [--quick] [--size-mib N] [--repeats N] [--dir DIR]

Prints a table, then one JSON line (the last line).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

REPO_SRC = Path(__file__).resolve().parents[1] / "src"
if str(REPO_SRC) not in sys.path:
    sys.path.insert(0, str(REPO_SRC))

import torch  # noqa: E402

from outlive import Checkpointer  # noqa: E402
from outlive.ckpt import daly_interval_s  # noqa: E402

TENSOR_MIB = 64  # the state is made of tensors this big, like a model's layers


def make_state(size_mib: int) -> Dict[str, torch.Tensor]:
    count = max(1, size_mib // TENSOR_MIB)
    numel = TENSOR_MIB * 1024 * 1024 // 4
    gen = torch.Generator().manual_seed(0)
    return {f"layer{i}.weight": torch.randn(numel, generator=gen) for i in range(count)}


def measure(
    fn: Callable[[int], Any], repeats: int, after: Callable[[], Any] = lambda: None
) -> List[float]:
    """Seconds per call of fn(i), with ``after`` (not timed) between calls."""
    times = []
    for i in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        after()
    return times


def bench_dcp(state: Dict[str, torch.Tensor], root: Path, repeats: int) -> Dict[str, Any]:
    try:
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp

        if not dist.is_initialized():
            store = dist.FileStore(str(root / "dcp-store"), 1)
            dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        futures: List[Any] = []

        def save(i: int) -> None:
            futures.append(dcp.async_save(state, checkpoint_id=str(root / f"dcp-{i}")))

        def wait() -> None:
            futures.pop().result()
            for old in root.glob("dcp-*"):
                shutil.rmtree(old, ignore_errors=True)

        times = measure(save, repeats, wait)
        dist.destroy_process_group()
        return {"times": times, "error": None}
    except Exception as exc:  # report, do not fail the bench: "where it runs"
        return {"times": [], "error": f"{type(exc).__name__}: {exc}"}


def _step(tensors: List[torch.Tensor]) -> None:
    torch._foreach_mul_(tensors, 0.999)  # an optimizer step, in place, over every weight
    torch._foreach_add_(tensors, 0.001)


def overhead_loop(
    state: Dict[str, torch.Tensor], root: Path, steps: int, every_s: float
) -> Dict[str, Any]:
    """Run ``steps`` in-place updates, saving every ``every_s`` seconds (never while a persist
    is running: the tuned cadence never saves more often than a persist takes), and split the
    time into quiet steps, steps that ran beside a persist, and save() stalls.

    The extra cost of a save is its stall plus, for every step that ran while its persist was in
    flight, that step's time above the median quiet step: both measured in the same loop, so a
    neighbour's load on the machine skews both sides alike.
    """
    tensors = list(state.values())
    ckpt = Checkpointer(root / "loop", keep_last=1, handle_signals=False, every_s=every_s)
    quiet: List[float] = []
    beside: List[float] = []
    stalls: List[float] = []
    for step in range(1, steps + 1):
        busy = ckpt.persisting
        t0 = time.perf_counter()
        _step(tensors)
        elapsed = time.perf_counter() - t0
        (beside if busy or ckpt.persisting else quiet).append(elapsed)
        if not ckpt.persisting and ckpt.due(step):
            t0 = time.perf_counter()
            ckpt.save(state, step=step)
            stalls.append(time.perf_counter() - t0)
    ckpt.close()
    persist_s = ckpt.cadence.persist_s
    shutil.rmtree(root / "loop", ignore_errors=True)
    quiet_s = statistics.median(quiet) if quiet else 0.0
    extra_s = sum(stalls) + sum(max(0.0, t - quiet_s) for t in beside)
    return {
        "saves": len(stalls),
        "quiet_step_s": quiet_s,
        "steps_beside_persist": len(beside),
        "per_save_s": extra_s / max(len(stalls), 1),
        "persist_s": persist_s,
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a 128 MiB state, fewer repeats")
    parser.add_argument("--size-mib", type=int, default=None, help="state size (default 1024)")
    parser.add_argument("--repeats", type=int, default=None, help="saves per method (default 4)")
    parser.add_argument("--mtbf-s", type=float, default=3600.0, help="MTBF for the cadence")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args(argv)
    size_mib = args.size_mib or (128 if args.quick else 1024)
    repeats = args.repeats or (2 if args.quick else 4)
    root = Path(tempfile.mkdtemp(prefix="outlive-stall-", dir=args.dir))
    state = make_state(size_mib)
    tensors = list(state.values())
    size_bytes = sum(t.numel() * t.element_size() for t in tensors)
    try:
        results = run(state, root, repeats)
        # A loop long enough for a few saves spaced by twice the (unloaded) persist time.
        persist_c = statistics.median(results["outlive_persist"])
        every_s = 2 * persist_c
        step_s = statistics.median(measure(lambda i: _step(tensors), 5))
        loop_steps = max(10, int(3.5 * every_s / step_s))
        loop = overhead_loop(state, root, loop_steps, every_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = {name: statistics.median(r) for name, r in results.items() if r}
    # The first outlive save pays for allocating its snapshot buffers; later ones reuse them.
    outlive_first = results["outlive_async"][0]
    outlive_steady = statistics.median(results["outlive_async"][1:])
    per_save_s = loop["per_save_s"]
    saves = loop["saves"]
    # The tuned cadence uses C as measured while training runs (it re-measures every persist).
    loaded_c = loop["persist_s"] if loop["persist_s"] is not None else persist_c
    tau_s = daly_interval_s(loaded_c, args.mtbf_s)
    overhead = per_save_s / tau_s if tau_s > 0 else float("inf")
    stall_only = outlive_steady / daly_interval_s(persist_c, args.mtbf_s)

    gib = size_bytes / 2**30
    print(
        f"checkpoint stall, state {gib:.2f} GiB in {len(state)} float32 tensors, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} saves each"
    )
    rows = [
        ("copy floor (clone)", med["copy_floor"]),
        ("warm copy (copy_)", med["warm_copy"]),
        ("outlive async, first", outlive_first),
        ("outlive async, steady", outlive_steady),
        ("outlive sync", med["outlive_sync"]),
        ("torch.save", med["torch_save"]),
    ]
    if "dcp_async" in med:
        rows.append(("dcp async_save", med["dcp_async"]))
    print(f"{'loop blocked per save':<24} {'median s':>9} {'x floor':>8} {'GiB/s':>7}")
    for name, value in rows:
        print(f"{name:<24} {value:>9.3f} {value / med['copy_floor']:>8.2f} {gib / value:>7.2f}")
    if results["dcp_error"]:
        print(f"dcp async_save did not run here: {results['dcp_error']}")
    print(f"outlive background persist (C): {persist_c:.2f} s (CRC-32, write, fsync, renames)")
    print(
        f"loop of {loop_steps} in-place steps over the whole state (every core busy; median "
        f"quiet step {loop['quiet_step_s'] * 1000:.0f} ms), {saves} saves: {per_save_s:.3f} s "
        f"per save (stall + the slowdown of the {loop['steps_beside_persist']} steps that ran "
        f"beside a persist); C under that load {loaded_c:.2f} s"
    )
    print(
        f"at the tuned cadence (Daly, MTBF {args.mtbf_s:.0f} s: a save every {tau_s:.0f} s) "
        f"checkpointing costs {100 * overhead:.3f}% of training time; with an idle CPU (a GPU "
        f"job) only the stall counts: {100 * stall_only:.3f}%"
    )

    figures: Dict[str, Any] = {
        "state_bytes": size_bytes,
        "threads": torch.get_num_threads(),
        "copy_floor_s": round(med["copy_floor"], 4),
        "warm_copy_s": round(med["warm_copy"], 4),
        "outlive_async_first_s": round(outlive_first, 4),
        "outlive_async_stall_s": round(outlive_steady, 4),
        "outlive_sync_s": round(med["outlive_sync"], 4),
        "outlive_persist_s": round(persist_c, 3),
        "torch_save_s": round(med["torch_save"], 4),
        "dcp_async_stall_s": round(med["dcp_async"], 4) if "dcp_async" in med else None,
        "loop_step_s": round(loop["quiet_step_s"], 4),
        "loop_saves": saves,
        "loop_per_save_s": round(per_save_s, 4),
        "loop_persist_s": round(loaded_c, 3),
        "daly_interval_s": round(tau_s, 1),
        "mtbf_s": args.mtbf_s,
    }
    ratios: Dict[str, Any] = {
        "outlive_stall_over_copy_floor": round(outlive_steady / med["copy_floor"], 3),
        "outlive_first_stall_over_copy_floor": round(outlive_first / med["copy_floor"], 3),
        "outlive_stall_over_warm_copy": round(outlive_steady / med["warm_copy"], 3),
        "torch_save_over_outlive_stall": round(med["torch_save"] / outlive_steady, 2),
        "dcp_async_over_outlive_stall": (
            round(med["dcp_async"] / outlive_steady, 2) if "dcp_async" in med else None
        ),
        "overhead_fraction_at_tuned_cadence": round(overhead, 5),
        "stall_only_overhead_fraction": round(stall_only, 6),
    }
    goals = {
        "stall_within_1_5x_copy_floor": outlive_steady <= 1.5 * med["copy_floor"],
        "stall_10x_below_torch_save": med["torch_save"] >= 10 * outlive_steady,
        "overhead_at_tuned_cadence_le_1pct": overhead <= 0.01,
    }
    print(json.dumps({"bench": "ckpt_stall", "figures": figures, "ratios": ratios, "goals": goals}))
    return 0


def run(state: Dict[str, torch.Tensor], root: Path, repeats: int) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    copies: List[Any] = []
    results["copy_floor"] = measure(
        lambda i: copies.append({k: v.clone() for k, v in state.items()}), repeats, copies.clear
    )
    warm = {k: torch.empty_like(v) for k, v in state.items()}
    for k, v in state.items():
        warm[k].copy_(v)

    def warm_copy(i: int) -> None:
        for k, v in state.items():
            warm[k].copy_(v)

    results["warm_copy"] = measure(warm_copy, repeats)
    warm.clear()

    ckpt = Checkpointer(root / "outlive", keep_last=1, handle_signals=False)
    persist: List[float] = []

    def flush_and_record() -> None:
        ckpt.flush()
        stats = ckpt.last_save
        if stats is not None and stats.persist_s is not None:
            persist.append(stats.persist_s)

    results["outlive_async"] = measure(
        lambda i: ckpt.save(state, step=i + 1), repeats + 1, flush_and_record
    )
    results["outlive_persist"] = persist
    ckpt.close()
    shutil.rmtree(root / "outlive")

    sync = Checkpointer(root / "outlive-sync", keep_last=1, handle_signals=False, sync=True)
    results["outlive_sync"] = measure(lambda i: sync.save(state, step=i + 1), repeats)
    sync.close()
    shutil.rmtree(root / "outlive-sync")

    path = root / "torch.pt"
    results["torch_save"] = measure(lambda i: torch.save(state, path), repeats)
    path.unlink()

    dcp = bench_dcp(state, root, repeats)
    results["dcp_async"] = dcp["times"]
    results["dcp_error"] = dcp["error"]
    return results


if __name__ == "__main__":
    sys.exit(main())
