"""Interleaved before/after of `outlive pull` on one tree: A, B, A, B ... and medians.

Each variant is an outlive source tree (``NAME=SRC_DIR``, its ``src`` put first on
``PYTHONPATH``; ``NAME=.`` is this checkout), run by the same interpreter against the same box
and tree; a plain ``rsync -a`` of the tree runs in the same rotation as the reference. Each
pull pays for its own connection (the master is closed before it), as in
``bench/pull_throughput.py``, and CPU is counted by a cgroup per side.

    python bench/pull_ab.py before=/tmp/pull-base after=. [--rounds 8] [--size-mib 128]
                            [--small-files N] [--bwlimit-mbs 40] [--box NAME]
                            [-- EXTRA PULL ARGS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, median
from pull_throughput import PullBench, Runs, drop_master, make_tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="NAME=SRC_DIR (an outlive checkout)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--size-mib", type=int, default=128)
    ap.add_argument("--bwlimit-mbs", type=float, default=0.0, help="cap both (0: free link)")
    ap.add_argument(
        "--small-files", type=int, default=0,
        help="a tree of this many 16 KiB files in 4 directories instead (0: the bench's tree)",
    )  # fmt: skip
    ap.add_argument("--box", default="pullab")
    ap.add_argument("--no-rsync", action="store_true", help="leave plain rsync out")
    args, extra = ap.parse_known_args()
    extra = [x for x in extra if x != "--"]
    variants = [v.split("=", 1) for v in args.variants]
    bw_kibs = int(args.bwlimit_mbs * 1e6 / 1024)
    with PullBench.up(args.box, "pull-ab") as bench:
        box, meter, local, ckpt, proj = bench.box, bench.meter, bench.local, bench.ckpt, bench.proj
        if args.small_files:
            make_small_tree(ckpt, args.small_files)
        else:
            make_tree(ckpt, args.size_mib << 20, files_per_dir=4)
        rsync = bench.rsync
        if bw_kibs:
            rsync.append(f"--bwlimit={bw_kibs}")
            extra += ["--bwlimit-kbps", str(bw_kibs)]
        results = {name: Runs() for name, _ in variants}
        plain = Runs()
        envs = {}
        for name, src in variants:
            root = Path(src).resolve()
            envs[name] = dict(os.environ, PYTHONPATH=str(root / "src"))
        for i in range(-1, args.rounds):  # round -1 warms up (installs each agent bundle)
            order = variants if i % 2 == 0 else variants[::-1]
            if not args.no_rsync:
                meter.run([*rsync, f"{box.name}:{ckpt}/", f"{local / 'rsync'}/"],
                          plain if i >= 0 else None)  # fmt: skip
                shutil.rmtree(local / "rsync", ignore_errors=True)
            for name, _ in order:
                dest = local / name
                drop_master(box)
                os.environ["PYTHONPATH"] = envs[name]["PYTHONPATH"]
                try:
                    meter.run(
                        [OUTLIVE, "pull", bench.run_id, "--json", "--to", str(dest), *extra],
                        results[name] if i >= 0 else None,
                        cwd=proj,
                    )
                finally:
                    os.environ.pop("PYTHONPATH", None)
                if not (dest / "PULL_VERIFIED.json").exists():
                    raise RuntimeError(f"{name}: the pull did not verify")
                shutil.rmtree(dest, ignore_errors=True)
            print(f"round {i + 1}/{args.rounds} load {os.getloadavg()[0]:.2f}", flush=True)
        rows = ([] if args.no_rsync else [("rsync -a", plain)]) + list(results.items())
        cap = f", both capped at {args.bwlimit_mbs:g} MB/s" if bw_kibs else ""
        tree = f"{args.small_files} files of 16 KiB" if args.small_files else f"{args.size_mib} MiB"
        print(f"{tree}, {args.rounds} interleaved rounds{cap}, medians; "
              f"load average now {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"{'what':12s} seconds  CPU-s here   box  total  vs rsync s  vs rsync CPU")
        for name, runs in rows:
            vs = ""
            if plain.seconds:
                vs = f"{plain.s / runs.s:8.2f}x  {runs.cpu_s / plain.cpu_s:8.2f}x"
            print(f"{name:12s} {runs.s:7.3f}  {median(runs.here_cpu_s):10.3f} "
                  f"{median(runs.box_cpu_s):5.3f} {runs.cpu_s:6.3f}  {vs}")  # fmt: skip


def make_small_tree(root: Path, files: int, size_bytes: int = 16384) -> None:
    """``files`` random files of ``size_bytes`` over 4 directories: outputs of many small
    files (logs, shards, per-step records), where per-file costs show."""
    for i in range(files):
        sub = root / f"shard-{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size_bytes))


if __name__ == "__main__":
    main()
