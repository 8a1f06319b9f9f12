"""Checkpoint stall: how long the training loop is blocked per save, against fair baselines.

Compared, side by side, in one process on the same state (a dict of float32 tensors, 1 GiB and
4 GiB in the full run, 256 MiB with --quick):
  copy floor     copy_ of every tensor into host buffers allocated before (pinned with --cuda):
                 the cheapest possible snapshot, the memcpy itself (timed just before each
                 outlive save, so both meet the same neighbours on a shared machine)
  cold copy      torch.empty_like(...).copy_(...): the same copy into fresh memory (page faults)
  outlive async  Checkpointer.save(): snapshot, then persist in the background (first save, and
                 later saves that reuse the snapshot buffers); with --cuda save() returns once
                 the copies are queued, and "copies landed" is the time until they are done
  outlive sync   Checkpointer.save(sync=True): returns once the file is committed
  torch.save     torch.save to a temp file + flush + fsync + rename + directory fsync: a fair
                 durable baseline, fully blocking
  dcp async      torch.distributed.checkpoint.async_save (one process, gloo group): the time
                 until it returns its future

Then the overhead at the tuned cadence: a loop of in-place "optimizer steps" over the state runs
with saves every Daly interval; the extra loop time per save (stall plus the background persist
competing for CPU and memory bandwidth) divided by Daly's interval for the measured persist time
and an MTBF (--mtbf-s, default one hour: a spot-like interruption rate) is the share of training
time checkpointing costs.

    python bench/ckpt_stall.py [--quick] [--size-mib N] [--repeats N] [--cuda] [--dir DIR]

Prints a table per size, each followed by one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
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
from outlive.ckpt.durable import fsync_directory  # noqa: E402

TENSOR_MIB = 64  # the state is made of tensors this big, like a model's layers
Times = List[float]


def make_state(size_mib: int, device: str) -> Dict[str, torch.Tensor]:
    count = max(1, size_mib // TENSOR_MIB)
    numel = TENSOR_MIB * 1024 * 1024 // 4
    gen = torch.Generator().manual_seed(0)
    return {f"layer{i}.weight": torch.randn(numel, generator=gen).to(device) for i in range(count)}


def settle() -> None:
    """Let queued device work finish (not timed), so each method starts from an idle stream."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def measure(fn: Callable[[int], Any], repeats: int, after: Callable[[], Any] = settle) -> Times:
    """Seconds per call of fn(i), with ``after`` (not timed) between calls."""
    times = []
    for i in range(repeats):
        gc.collect()
        settle()
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        after()
    return times


def durable_torch_save(state: Dict[str, torch.Tensor], path: Path) -> None:
    """torch.save made as durable as a checkpoint must be: temp, fsync, rename, dir fsync."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def cold_copy(state: Dict[str, torch.Tensor], repeats: int) -> Times:
    copies: List[Any] = []

    def cold(i: int) -> None:
        copies.append({k: torch.empty_like(v, device="cpu").copy_(v) for k, v in state.items()})
        settle()

    return measure(cold, repeats, copies.clear)


def bench_outlive(state: Dict[str, torch.Tensor], root: Path, repeats: int) -> Dict[str, Times]:
    """outlive's stall per save, each right after the copy floor measured at the same moment:
    on a shared machine the two then see the same neighbours (the floor alone moves by 2x)."""
    on_cuda = next(iter(state.values())).is_cuda
    warm = {
        k: torch.empty(v.shape, dtype=v.dtype, device="cpu", pin_memory=on_cuda)
        for k, v in state.items()
    }

    def floor(i: int) -> None:
        for k, v in state.items():
            warm[k].copy_(v, non_blocking=on_cuda)
        settle()  # the copy has landed: a snapshot is only a snapshot then

    floor(0)  # map (and pin) the buffers once, untimed
    results: Dict[str, Times] = {
        "copy_floor": [],
        "outlive_async": [],
        "outlive_landed": [],
        "outlive_persist": [],
    }
    ckpt = Checkpointer(root / "outlive", keep_last=1, handle_signals=False)
    for step in range(1, repeats + 2):
        if step > 1:  # the first save allocates its buffers: reported apart, no floor beside it
            results["copy_floor"] += measure(floor, 1)
        gc.collect()
        settle()
        t0 = time.perf_counter()
        ckpt.save(state, step=step)
        t1 = time.perf_counter()
        settle()  # on a GPU: until the copies have landed (the training stream waits as long)
        results["outlive_async"].append(t1 - t0)
        results["outlive_landed"].append(time.perf_counter() - t0)
        ckpt.flush()
        stats = ckpt.last_save
        if stats is not None and stats.persist_s is not None:
            results["outlive_persist"].append(stats.persist_s)
        time.sleep(0.2)  # let the kernel finish the previous file's writeback and discard
    ckpt.close()
    warm.clear()
    shutil.rmtree(root / "outlive")

    sync = Checkpointer(root / "outlive-sync", keep_last=1, handle_signals=False, sync=True)
    results["outlive_sync"] = measure(lambda i: sync.save(state, step=i + 1), repeats)
    sync.close()
    shutil.rmtree(root / "outlive-sync")
    return results


def bench_torch_save(state: Dict[str, torch.Tensor], root: Path, repeats: int) -> Times:
    path = root / "torch.pt"

    def drop_old() -> None:  # untimed: the baseline does not pay for freeing the old file
        path.unlink()
        settle()

    return measure(lambda i: durable_torch_save(state, path), repeats, drop_old)


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
    settle()  # a real loop syncs once a step (loss.item()); the step time includes the GPU's


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
    quiet: Times = []
    beside: Times = []
    stalls: Times = []
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


def load_average() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_size(size_mib: int, device: str, repeats: int, mtbf_s: float, root: Path) -> None:
    load_start = load_average()
    state = make_state(size_mib, device)
    tensors = list(state.values())
    size_bytes = sum(t.numel() * t.element_size() for t in tensors)
    results: Dict[str, Any] = {"cold_copy": cold_copy(state, repeats)}
    results.update(bench_outlive(state, root, repeats))
    results["torch_save"] = bench_torch_save(state, root, repeats)
    dcp = bench_dcp(state, root, repeats)
    results["dcp_async"] = dcp["times"]
    gc.collect()
    # A loop long enough for a few saves spaced by twice the (unloaded) persist time.
    persist_c = statistics.median(results["outlive_persist"])
    every_s = 2 * persist_c
    step_s = statistics.median(measure(lambda i: _step(tensors), 5))
    loop_steps = max(10, int(3.5 * every_s / step_s))
    loop = overhead_loop(state, root, loop_steps, every_s)
    load_end = load_average()
    report(size_bytes, device, repeats, mtbf_s, results, dcp["error"], loop, load_start, load_end)


def report(
    size_bytes: int,
    device: str,
    repeats: int,
    mtbf_s: float,
    results: Dict[str, Any],
    dcp_error: str | None,
    loop: Dict[str, Any],
    load_start: List[float],
    load_end: List[float],
) -> None:
    med = {name: statistics.median(r) for name, r in results.items() if r}
    floor = med["copy_floor"]
    # The first outlive save allocates its snapshot buffers; later ones reuse them.
    outlive_first = results["outlive_async"][0]
    stall = statistics.median(results["outlive_async"][1:])
    # Each later save was timed right after a floor copy: the median of those pairs' ratios is
    # what a drifting load on a shared machine moves least.
    pairs = zip(results["outlive_async"][1:], results["copy_floor"], strict=True)
    paired = statistics.median(s / f for s, f in pairs)
    persist_c = med["outlive_persist"]
    loaded_c = loop["persist_s"] if loop["persist_s"] is not None else persist_c
    tau_s = daly_interval_s(loaded_c, mtbf_s)
    overhead = loop["per_save_s"] / tau_s if tau_s > 0 else float("inf")
    stall_only = stall / daly_interval_s(persist_c, mtbf_s)
    dcp = med.get("dcp_async")
    gib = size_bytes / 2**30
    cpus = os.cpu_count() or 1
    busy = max(load_start[0], load_end[0]) >= 0.5 * cpus
    print(
        f"\ncheckpoint stall, state {gib:.2f} GiB in {size_bytes // (TENSOR_MIB << 20)} float32 "
        f"tensors on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{repeats} saves each; {cpus} CPUs, load average {load_start} at start, {load_end} at "
        f"end ({'loaded: shared with other jobs' if busy else 'quiet'})"
    )
    rows = [
        ("copy floor (warm copy_)", floor),
        ("cold copy (empty_like)", med["cold_copy"]),
        ("outlive async, first", outlive_first),
        ("outlive async, steady", stall),
        ("outlive sync (durable)", med["outlive_sync"]),
        ("torch.save + fsync", med["torch_save"]),
    ]
    if device != "cpu":  # save() returns before its copies land; the training stream waits
        rows.insert(4, ("outlive copies landed", statistics.median(results["outlive_landed"][1:])))
    if dcp is not None:
        rows.append(("dcp async_save", dcp))
    print(f"{'loop blocked per save':<25} {'median s':>9} {'x floor':>8} {'GiB/s':>7}")
    for name, value in rows:
        print(f"{name:<25} {value:>9.3f} {value / floor:>8.2f} {gib / value:>7.2f}")
    if dcp_error:
        print(f"dcp async_save did not run here: {dcp_error}")
    print(f"outlive background persist (C): {persist_c:.2f} s (CRC-32, write, fsync, renames)")
    print(
        f"loop of in-place steps over the whole state (median quiet step "
        f"{loop['quiet_step_s'] * 1000:.0f} ms), {loop['saves']} saves: {loop['per_save_s']:.3f} "
        f"s per save (stall + the slowdown of the {loop['steps_beside_persist']} steps that ran "
        f"beside a persist); C under that load {loaded_c:.2f} s"
    )
    print(
        f"at the tuned cadence (Daly, MTBF {mtbf_s:.0f} s: a save every {tau_s:.0f} s) "
        f"checkpointing costs {100 * overhead:.3f}% of training time; counting the stall only "
        f"(an idle CPU beside a GPU job): {100 * stall_only:.3f}%"
    )
    figures: Dict[str, Any] = {
        "device": device,
        "state_bytes": size_bytes,
        "threads": torch.get_num_threads(),
        "cpus": cpus,
        "load_avg_start": load_start,
        "load_avg_end": load_end,
        "copy_floor_s": round(floor, 4),
        "cold_copy_s": round(med["cold_copy"], 4),
        "outlive_async_first_s": round(outlive_first, 4),
        "outlive_async_stall_s": round(stall, 4),
        "outlive_landed_s": round(statistics.median(results["outlive_landed"][1:]), 4),
        "outlive_sync_s": round(med["outlive_sync"], 4),
        "outlive_persist_s": round(persist_c, 3),
        "durable_torch_save_s": round(med["torch_save"], 4),
        "dcp_async_stall_s": round(dcp, 4) if dcp is not None else None,
        "loop_step_s": round(loop["quiet_step_s"], 4),
        "loop_saves": loop["saves"],
        "loop_per_save_s": round(loop["per_save_s"], 4),
        "loop_persist_s": round(loaded_c, 3),
        "daly_interval_s": round(tau_s, 1),
        "mtbf_s": mtbf_s,
    }
    ratios: Dict[str, Any] = {
        "stall_over_copy_floor": round(stall / floor, 3),
        "stall_over_copy_floor_paired": round(paired, 3),
        "first_stall_over_copy_floor": round(outlive_first / floor, 3),
        "stall_over_cold_copy": round(stall / med["cold_copy"], 3),
        "durable_torch_save_over_stall": round(med["torch_save"] / stall, 2),
        "dcp_async_stall_over_stall": round(dcp / stall, 2) if dcp is not None else None,
        "overhead_fraction_at_tuned_cadence": round(overhead, 5),
        "stall_only_overhead_fraction": round(stall_only, 6),
    }
    goals = {
        "stall_le_1_5x_copy_floor": paired <= 1.5,
        "ge_10x_below_durable_torch_save": med["torch_save"] >= 10 * stall,
        "le_dcp_async_save_stall": (stall <= dcp) if dcp is not None else None,
        "overhead_le_1pct": overhead <= 0.01,
    }
    line = {"bench": "ckpt_stall", "figures": figures, "ratios": ratios, "goals": goals}
    print(json.dumps(line), flush=True)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a 256 MiB state, fewer repeats")
    parser.add_argument(
        "--size-mib", type=int, action="append", help="state size (default: 1024, then 4096)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="saves per method (default 4)")
    parser.add_argument("--mtbf-s", type=float, default=3600.0, help="MTBF for the cadence")
    parser.add_argument("--cuda", action="store_true", help="the state on cuda:0")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.cuda and not torch.cuda.is_available():
        print(
            "--cuda needs a CUDA GPU and a CUDA build of torch; this machine has none "
            f"(torch {torch.__version__}), so there is nothing to measure.",
            file=sys.stderr,
        )
        return 2
    sizes = args.size_mib or ([256] if args.quick else [1024, 4096])
    repeats = args.repeats or (3 if args.quick else 4)
    device = "cuda:0" if args.cuda else "cpu"
    for size_mib in sizes:
        root = Path(tempfile.mkdtemp(prefix="outlive-stall-", dir=args.dir))
        try:
            run_size(size_mib, device, repeats, args.mtbf_s, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
