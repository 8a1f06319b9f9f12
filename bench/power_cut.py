"""Power cut: record each save under strace, build every disk state a power cut could leave
(POSIX/ext4 ordering rules, docs/power-cut.md), load each one, count the bad ones.

A state is bad when loading raises, returns a wrong step or wrong content, or returns an older step
than one whose save had already returned (a committed save lost). Compared, side by side:
  outlive_sync         Checkpointer(sync=True): tmp, fsync, rename, fsync dir; nested dir created
  outlive_async        Checkpointer() default two-phase save, background persist
  outlive_prune        Checkpointer(sync=True, keep_last=1): each save prunes the previous one
  outlive_resume       a restarted job: resume, sweep a dead writer's tmp, keep_last=2 + best=1
  outlive_dcp          DistributedCheckpointer(mode="sharded", keep_last=2), gloo world size 1:
                       DCP save + the dist_commit marker protocol (torch)
  outlive_dcp_async    the same with async_save=True (full run only)
  dcp_marker           DCP save + every file fsynced again + a COMMIT marker written with
                       outlive's durable write (the protocol in a dozen lines; full run only)
  pickle_latest        pickle.dump straight to latest.pkl
  rename_no_fsync      pickle to a tmp file, rename over latest.pkl
  rename_no_dir_fsync  tmp file, fsync, rename, no directory fsync
  outlive_mutant_no_dir_fsync  outlive's commit with its directory fsync patched out: the checker
                       must catch it (the regression a refactor could bring)
  torch_save, dcp_no_marker, dcp_marker_trusting_dcp  (full run only: torch under strace is slow)

    python bench/power_cut.py [--quick] [--seed N]

Prints a table, then one JSON line (the last line).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

REPO_SRC = Path(__file__).resolve().parents[1] / "src"
if str(REPO_SRC) not in sys.path:
    sys.path.insert(0, str(REPO_SRC))

from outlive.testing.crashstate import WORKLOADS, Report, check, record, strace_missing  # noqa: E402

QUICK = ("outlive_sync", "outlive_async", "outlive_prune", "outlive_resume", "outlive_dcp")
FULL = (*QUICK, "outlive_dcp_async", "dcp_marker")
QUICK_PEERS = (
    "pickle_latest",
    "rename_no_fsync",
    "rename_no_dir_fsync",
    "outlive_mutant_no_dir_fsync",
)
FULL_PEERS = (*QUICK_PEERS, "torch_save", "dcp_no_marker", "dcp_marker_trusting_dcp")
# (steps saved, random mixes per crash point): quick, full
SIZES = {True: (3, 4), False: (5, 16)}
DCP_STEPS = {True: 1, False: 3}  # each DCP step is ~25 crash points of several files


def _available(name: str) -> bool:
    for module in WORKLOADS[name].needs:
        try:
            __import__(module)
        except ImportError:
            print(f"note: {module} is not importable here; {name} is skipped")
            return False
    return True


def run(name: str, steps: int, random_per_prefix: int, seed: int) -> Tuple[Report, float]:
    started = time.monotonic()
    recording = record(name, steps=steps)
    report = check(recording, WORKLOADS[name], seed=seed, random_per_prefix=random_per_prefix)
    return report, time.monotonic() - started


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer steps and mixes (~1 min)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    missing = strace_missing()
    if missing:
        print(f"power_cut: {missing}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    steps, mixes = SIZES[args.quick]
    names = [n for n in (QUICK if args.quick else FULL) if _available(n)]
    peers = [n for n in (QUICK_PEERS if args.quick else FULL_PEERS) if _available(n)]

    results: Dict[str, Tuple[Report, float]] = {}
    for name in names + peers:
        n_steps = DCP_STEPS[args.quick] if "dcp" in name else steps
        results[name] = run(name, n_steps, mixes, seed)

    load = os.getloadavg()
    print(
        f"power-cut crash states, seed {seed}, {mixes} random mixes per crash point, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'workload':<28} {'kind':<8} {'ops':>5} {'states':>7} {'bad':>6}  {'time s':>6}  worst")
    for name, (report, elapsed_s) in results.items():
        kind = "outlive" if WORKLOADS[name].safe else "unsafe"
        worst = report.reasons.most_common(1)[0][0] if report.reasons else "-"
        print(
            f"{name:<28} {kind:<8} {report.ops:>5} {report.states:>7} {report.bad:>6}  "
            f"{elapsed_s:>6.1f}  {worst}"
        )
    for name in names:
        for example in results[name][0].examples:
            print(f"  BAD {name}: {example}")
    print("states = distinct disk images (per crash point's expectation) loaded; bad = the load")
    print("raised, returned a wrong step or content, or lost a save that had returned.")

    outlive_states = sum(results[n][0].states for n in names)
    outlive_bad = sum(results[n][0].bad for n in names)
    figures: Dict[str, Any] = {
        "seed": seed,
        "load_avg_1m": round(load[0], 2),
        "states_checked": outlive_states,
        "bad_states": outlive_bad,
    }
    for name, (report, _) in results.items():
        figures[f"{name}_states"] = report.states
        figures[f"{name}_bad"] = report.bad
    goals: Dict[str, bool] = {
        "zero_bad_crash_states": outlive_bad == 0 and outlive_states > 0,
        "unsafe_peers_caught": all(results[n][0].bad > 0 for n in peers),
    }
    if not args.quick:
        goals["states_checked_ge_1000"] = outlive_states >= 1000
    print(json.dumps({"bench": "power_cut", "figures": figures, "ratios": {}, "goals": goals}))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
