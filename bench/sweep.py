"""Sweep makespan: `outlive sweep` over the local target and a testbed box vs the ideal packing
of its items on their slots, and vs a hand-written `xargs -P` queue on one machine.

Every item sleeps D seconds; with S slots in all (2 per target) the ideal makespan is
ceil(N / S) * D. outlive's figure is the wall time of the whole `outlive sweep` call: CLI
start-up, the registry, one look per pass, a push + journaled launch per item, and the final
look. The overhead per item is its excess over the ideal, spread over the items.

    python bench/sweep.py [--quick] [--box NAME]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, box_bench, result_line, table

PER_TARGET = 2


def main() -> None:
    _box, proj, _workdir, items = box_bench(__doc__ or "", "sweep-bench", 8, 24)
    sleep_s = 12.0 if items <= 8 else 20.0  # real items run minutes to hours
    slots = 2 * PER_TARGET
    command = ["sh", "-c", f"sleep {sleep_s}", "item-{n}"]
    stamp = time.strftime("%H%M%S")
    (proj / "sweep.toml").write_text(
        f'name = "bench{stamp}"\ncommand = {json.dumps(command)}\n'
        f"[grid]\nn = {json.dumps(list(range(items)))}\n"
    )
    argv = [OUTLIVE, "sweep", "sweep.toml", "-t", "local", "-t", "box"]
    argv += ["--per-target", str(PER_TARGET), "--json"]
    # the peer runs at the same time (both only sleep), so --quick stays under a minute
    t0 = time.perf_counter()
    peer = subprocess.Popen(
        ["xargs", "-P", str(slots), "-n", "1", "sh", "-c", 'sleep "$0"'],
        stdin=subprocess.PIPE,
        text=True,
    )
    assert peer.stdin is not None
    peer.stdin.write("\n".join([str(sleep_s)] * items))
    peer.stdin.close()
    peer_end: list[float] = []
    waiter = threading.Thread(target=lambda: peer_end.append((peer.wait(), time.perf_counter())[1]))
    waiter.start()
    done = subprocess.run(argv, cwd=proj, capture_output=True, text=True, check=False)
    ours = time.perf_counter() - t0
    waiter.join()
    if peer.returncode != 0:
        raise SystemExit("xargs failed")
    theirs = peer_end[0] - t0
    if done.returncode != 0:
        raise SystemExit(f"outlive sweep failed: {done.stderr.strip()}")
    summary = json.loads(done.stdout)["summary"]

    ideal = math.ceil(items / slots) * sleep_s
    per_item = (ours - ideal) / items
    print(f"{items} items of {sleep_s:g} s on {slots} slots (local + box, {PER_TARGET} each)")
    print(
        table(
            [
                ("ideal packing", ideal),
                (f"xargs -P {slots} (one machine)", theirs),
                ("outlive sweep (2 targets)", ours),
            ],
            ideal,
        )
    )
    print(f"done: {summary['done']} of {items}; overhead per item {per_item:.3f} s")
    print(
        result_line(
            "sweep",
            {
                "outlive_makespan_s": round(ours, 3),
                "xargs_makespan_s": round(theirs, 3),
                "ideal_makespan_s": ideal,
                "overhead_per_item_s": round(per_item, 4),
            },
            {
                "outlive_vs_ideal": round(ours / ideal, 3),
                "outlive_vs_xargs": round(ours / theirs, 3),
            },
            {
                "overhead_per_item_le_0.3s": per_item <= 0.3,
                "makespan_le_1.1x_ideal": ours <= 1.1 * ideal,
                "all_items_done": summary["done"] == items,
            },
        )
    )


if __name__ == "__main__":
    main()
