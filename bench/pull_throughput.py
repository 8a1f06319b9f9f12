"""Pull throughput over the testbed link: `outlive pull` vs a plain `rsync -a` of the same tree.

outlive's figure is the whole command: CLI start-up, the roster round trip, the box hashing
every file (SHA-256) while rsync moves them (big directories side by side, the rest of a root
in one rsync: here, 4 directories of 32 MiB, one rsync), each file hashed and
load-checked here as soon as rsync has put it in place, and PULL_VERIFIED.json. The peers: a
plain `rsync -a` over its own ssh connection (no proof at all), and the same rsync followed by
`sha256sum` on both ends (what a careful user would type to get the proof by hand). Runs
alternate, each into a fresh directory; the tree is random bytes (incompressible, so no side
gains from -z), spread over several directories.

Three comparisons, each with its goal:
- free link: outlive >= 0.9x rsync wherever the hash floor (the best any tool hashing every
  byte on both ends could do with these CPUs) allows >= 0.95x;
- link-bound: both capped at the same rate (rsync --bwlimit, outlive pull --bwlimit-kbps, which
  caps the whole pull): outlive >= 0.95x, i.e. its hashing hides behind the transfer;
- CPU-seconds, both ends (this side and the box; counted by a cgroup per side, so a loaded
  machine's other work does not count): outlive <= 1.5x rsync.

    python bench/pull_throughput.py [--quick] [--box NAME] [--size-mib N] [--reps N]
                                    [--bwlimit-mbs MB/s]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, median, outlive, project_for, result_line
from _cpu_group import CpuGroup

from outlive.testing import Box

GOAL_RATIO = 0.9  # free link, where the floor allows FLOOR_ALLOWS
FLOOR_ALLOWS = 0.95
LINKBOUND_GOAL = 0.95
CPU_GOAL = 1.5
DIRS = 4


def make_tree(root: Path, size_bytes: int, files_per_dir: int) -> int:
    """Random files in DIRS directories plus a few small ones; returns the bytes written."""
    per_file = size_bytes // (DIRS * files_per_dir)
    total = 0
    block = 1 << 20
    for d in range(DIRS):
        sub = root / f"shard-{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_dir):
            with open(sub / f"part-{f:03d}.bin", "wb") as out:
                left = per_file
                while left > 0:
                    chunk = os.urandom(min(block, left))
                    out.write(chunk)
                    left -= len(chunk)
            total += per_file
    for i in range(8):  # small files: metadata, logs
        data = os.urandom(4096)
        (root / f"meta-{i}.bin").write_bytes(data)
        total += len(data)
    return total


def drop_master(box: Box) -> None:
    """Close outlive's ssh master so each measured command pays for one connection."""
    subprocess.run(
        ["ssh", "-F", str(box.ssh_config), "-O", "exit", "-o",
         f"ControlPath={tempfile.gettempdir()}/outlive-{os.getuid()}/%C", box.name],
        capture_output=True, check=False,
    )  # fmt: skip


def busy_cpu_s() -> float:
    """CPU-seconds this machine has spent busy since boot (all cores): the fallback where no
    cgroup can be made, which counts a neighbour's load too."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def sha256_cpu_s_per_gib() -> float:
    """CPU-seconds one core needs to SHA-256 a GiB here (hashlib, the same as outlive uses)."""
    import hashlib

    block = os.urandom(64 << 20)
    best = float("inf")
    for _ in range(3):  # the best of three: a noisy neighbour only ever makes it look slower
        t0 = time.process_time()
        hashlib.sha256(block).digest()
        best = min(best, time.process_time() - t0)
    return best * 16


@dataclass
class Runs:
    """Seconds and CPU-seconds (this side, the box) of each run of one command."""

    seconds: list[float] = field(default_factory=list)
    here_cpu_s: list[float] = field(default_factory=list)
    box_cpu_s: list[float] = field(default_factory=list)

    @property
    def s(self) -> float:
        return median(self.seconds)

    @property
    def cpu_s(self) -> float:
        return median([a + b for a, b in zip(self.here_cpu_s, self.box_cpu_s, strict=True)])


class Meter:
    """Runs commands with their CPU counted: this side by a cgroup each command starts in, the
    box by a cgroup its sshd (and so every session, rsync and agent it starts) is in."""

    def __init__(self, box: Box) -> None:
        tag = f"outlive-pull-bench-{os.getpid()}"
        self.here = CpuGroup.make(f"{tag}-here")
        self.box = CpuGroup.make(f"{tag}-box")
        self.last_stdout = ""  # what the last command printed
        if self.box is not None:
            for pid in box.procs():
                try:
                    self.box.add(pid)
                except OSError:  # gone meanwhile
                    continue

    @property
    def counted_by(self) -> str:
        if self.here is not None and self.box is not None:
            return "cgroup per side"
        return "whole machine (no cgroup here; a loaded machine's other work counts)"

    def _cpu(self) -> tuple[float, float]:
        if self.here is None or self.box is None:
            return busy_cpu_s(), 0.0
        return self.here.cpu_s(), self.box.cpu_s()

    def run(self, argv: list[str], runs: Runs | None = None, cwd: Path | None = None) -> float:
        group = self.here
        h0, b0 = self._cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            preexec_fn=group.add_self if group is not None else None,
        )
        elapsed = time.perf_counter() - t0
        h1, b1 = self._cpu()
        self.last_stdout = proc.stdout
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr[-2000:]}"
            )
        if runs is not None:
            runs.seconds.append(elapsed)
            runs.here_cpu_s.append(h1 - h0)
            runs.box_cpu_s.append(b1 - b0)
        return elapsed

    def close(self) -> None:
        for group in (self.here, self.box):
            if group is not None:
                group.close()


@dataclass
class PullBench:
    """One pull bench's world: the testbed box with its CPU meter, a project whose target
    ``box`` works in a directory of its own there, a finished run ``tree`` whose checkpoint
    directory (``ckpt``, empty) the bench fills, and a local directory for the copies.
    ``with PullBench.up(name, prefix) as b:`` removes all of it at the end."""

    box: Box
    meter: Meter
    tag: str
    proj: Path
    local: Path
    run_id: str
    ckpt: Path

    @classmethod
    def up(cls, box_name: str, prefix: str) -> PullBench:
        box = Box.up(box_name)
        meter = Meter(box)
        tag = f"{prefix}-{os.getpid()}"
        target = dict(box.target, workdir=str(box.workdir / tag), durable=str(box.durable / tag))
        proj = project_for(target)
        local = Path(tempfile.mkdtemp(prefix=f"outlive-{prefix}-"))
        bench = cls(box, meter, tag, proj, local, "", box.durable / tag / "tree")
        try:
            run = outlive(proj, "run", "-t", "box", "--name", "tree", "--json", "--", "true")
        except BaseException:
            bench.close()
            raise
        bench.run_id = json.loads(run.stdout)["run_id"]
        bench.ckpt.mkdir(parents=True, exist_ok=True)
        return bench

    def __enter__(self) -> PullBench:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def rsync(self) -> list[str]:
        """``rsync -a`` over its own ssh connection to the box."""
        return ["rsync", "-a", "-e", f"ssh -F {shlex.quote(str(self.box.ssh_config))}"]

    @property
    def src(self) -> str:
        return f"{self.box.name}:{self.ckpt}/"

    def close(self) -> None:
        self.meter.close()
        shutil.rmtree(self.local, ignore_errors=True)
        shutil.rmtree(self.box.durable / self.tag, ignore_errors=True)
        shutil.rmtree(self.box.workdir / self.tag, ignore_errors=True)
        shutil.rmtree(self.proj, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 128 MiB tree, one round (< 1 min)")
    ap.add_argument("--box", default="pullbench", help="testbed box name (its own by default)")
    ap.add_argument("--size-mib", type=int, default=None, help="tree size (default 1024)")
    ap.add_argument("--reps", type=int, default=None, help="rounds (default 3, quick 1)")
    ap.add_argument("--bwlimit-mbs", type=float, default=40.0, help="link-bound rate, MB/s")
    args = ap.parse_args()
    size_mib = args.size_mib or (128 if args.quick else 1024)
    reps = args.reps or (1 if args.quick else 3)
    bw_kibs = int(args.bwlimit_mbs * 1e6 / 1024)  # rsync's --bwlimit unit: 1024 bytes/s

    load_start = os.getloadavg()
    with PullBench.up(args.box, "pull-bench") as bench:
        box, meter, local, ckpt = bench.box, bench.meter, bench.local, bench.ckpt
        tree_bytes = make_tree(ckpt, size_mib << 20, files_per_dir=4)
        cfg = str(box.ssh_config)
        src, rsync = bench.src, bench.rsync
        pull = [OUTLIVE, "pull", bench.run_id, "--json"]
        # What outlive's ssh asks for first where the CPU has AES (transport/cipher.py), by
        # hand: how much of outlive's figure is the cipher, and how much the rest.
        rsync_aes = ["rsync", "-a", "-e", f"ssh -F {shlex.quote(cfg)} -c aes128-gcm@openssh.com"]
        plain, ours, plain_bw, ours_bw, aes = Runs(), Runs(), Runs(), Runs(), Runs()
        hashed: list[float] = []

        def outlive_pull(dest: Path, runs: Runs, *extra: str) -> None:
            drop_master(box)  # each measured pull pays for its own connection, as rsync does
            meter.run([*pull, "--to", str(dest), *extra], runs, cwd=bench.proj)
            if not (dest / "PULL_VERIFIED.json").exists():
                raise RuntimeError("outlive pull did not verify")

        def clear() -> None:
            # Each copy goes before the next command: a tree left behind would make the next
            # one pay for page-cache reclaim (charged to whoever allocates), not for its work.
            for d in local.iterdir():
                shutil.rmtree(d, ignore_errors=True)

        for i in range(reps):
            meter.run([*rsync, src, f"{local / f'rsync-{i}'}/"], plain)
            clear()
            meter.run([*rsync_aes, src, f"{local / f'rsync-aes-{i}'}/"], aes)
            clear()
            t0 = time.perf_counter()
            meter.run(["ssh", "-F", cfg, box.name,
                       f"cd {shlex.quote(str(ckpt))} && find . -type f -print0 | sort -z | "
                       "xargs -0 sha256sum > /dev/null"])  # fmt: skip
            dest = local / f"rsync-sha-{i}"
            meter.run([*rsync, src, f"{dest}/"])
            meter.run(["sh", "-c", f"cd {shlex.quote(str(dest))} && find . -type f -print0 | "
                       "sort -z | xargs -0 sha256sum > /dev/null"])  # fmt: skip
            hashed.append(time.perf_counter() - t0)
            clear()
            outlive_pull(local / f"outlive-{i}", ours)
            clear()
            capped = f"--bwlimit={bw_kibs}"
            meter.run([*rsync, capped, src, f"{local / f'rsync-bw-{i}'}/"], plain_bw)
            clear()
            outlive_pull(local / f"outlive-bw-{i}", ours_bw, "--bwlimit-kbps", str(bw_kibs))
            clear()
        report(args, tree_bytes, reps, plain, ours, plain_bw, ours_bw, median(hashed),
               meter.counted_by, load_start, aes)  # fmt: skip


def report(
    args: argparse.Namespace,
    tree_bytes: int,
    reps: int,
    plain: Runs,
    ours: Runs,
    plain_bw: Runs,
    ours_bw: Runs,
    hashed_s: float,
    counted_by: str,
    load_start: tuple[float, float, float],
    aes: Runs,
) -> None:
    p, o = plain.s, ours.s
    mib = tree_bytes / (1 << 20)
    ncpu = os.cpu_count() or 1
    load = os.getloadavg()
    print(f"pull of a {mib:.0f} MiB tree ({DIRS} dirs, random bytes) over the testbed link, "
          f"{reps} round(s), median; {ncpu} CPUs shared with the box; load average "
          f"{load_start[0]:.2f} at the start, {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          "at the end")  # fmt: skip
    print(f"{'what':48s}  seconds   MiB/s  vs rsync  CPU-s (here+box)")
    rows = [
        ("rsync -a (no proof)", p, plain.cpu_s, p),
        ("rsync -a + sha256sum on both ends", hashed_s, None, p),
        ("rsync -a, ssh -c aes128-gcm (outlive's cipher)", aes.s, aes.cpu_s, p),
        ("outlive pull (hash both ends + load + record)", o, ours.cpu_s, p),
        (f"rsync -a --bwlimit ({args.bwlimit_mbs:g} MB/s)", plain_bw.s, plain_bw.cpu_s, plain_bw.s),
        ("outlive pull --bwlimit-kbps (same rate)", ours_bw.s, ours_bw.cpu_s, plain_bw.s),
    ]
    for name, s, cpu, ref in rows:
        cpu_txt = f"{cpu:6.2f}" if cpu is not None else "     -"
        print(f"{name:48s}  {s:7.2f}  {mib / s:6.1f}  {ref / s:6.2f}x  {cpu_txt}")
    # The best any tool that SHA-256es every byte on both ends could do here: rsync's own CPU
    # plus two hashes of the tree, spread perfectly over every core, and never faster than
    # rsync itself.
    sha_s = sha256_cpu_s_per_gib() * tree_bytes / (1 << 30)
    floor_s = max(p, (plain.cpu_s + 2 * sha_s) / ncpu)
    floor_ratio = p / floor_s
    print(
        f"CPU-seconds counted by {counted_by}: rsync {plain.cpu_s:.2f} "
        f"(here {median(plain.here_cpu_s):.2f}, box {median(plain.box_cpu_s):.2f}), outlive "
        f"pull {ours.cpu_s:.2f} (here {median(ours.here_cpu_s):.2f}, box "
        f"{median(ours.box_cpu_s):.2f}); SHA-256 of the tree {sha_s:.2f} per end. Floor for "
        f"hashing both ends on {ncpu} cores: {floor_s:.2f} s, i.e. at best {floor_ratio:.2f}x "
        "rsync's throughput here"
    )
    ratio, bw_ratio, cpu_ratio = p / o, plain_bw.s / ours_bw.s, ours.cpu_s / plain.cpu_s
    print(
        result_line(
            "pull_throughput",
            {
                "tree_bytes": tree_bytes,
                "rsync_s": round(p, 3),
                "rsync_sha256_both_ends_s": round(hashed_s, 3),
                "outlive_pull_s": round(o, 3),
                "rsync_mib_s": round(mib / p, 1),
                "outlive_mib_s": round(mib / o, 1),
                "cpus": ncpu,
                "load_avg_1m_start": round(load_start[0], 2),
                "load_avg_1m_end": round(load[0], 2),
                "cpu_counted_by_cgroup": counted_by == "cgroup per side",
                "rsync_cpu_s": round(plain.cpu_s, 2),
                "rsync_box_cpu_s": round(median(plain.box_cpu_s), 2),
                "outlive_cpu_s": round(ours.cpu_s, 2),
                "outlive_box_cpu_s": round(median(ours.box_cpu_s), 2),
                "sha256_one_end_cpu_s": round(sha_s, 2),
                "hash_both_ends_floor_s": round(floor_s, 3),
                "bwlimit_mb_s": args.bwlimit_mbs,
                "rsync_bwlimit_s": round(plain_bw.s, 3),
                "outlive_bwlimit_s": round(ours_bw.s, 3),
                "rsync_aes_gcm_s": round(aes.s, 3),
                "rsync_aes_gcm_cpu_s": round(aes.cpu_s, 2),
            },
            {
                "outlive_vs_rsync_throughput": round(ratio, 3),
                "outlive_vs_rsync_sha256_throughput": round(hashed_s / o, 3),
                "best_possible_vs_rsync_here": round(floor_ratio, 3),
                "linkbound_outlive_vs_rsync": round(bw_ratio, 3),
                "outlive_vs_rsync_cpu_s": round(cpu_ratio, 3),
                "outlive_vs_rsync_aes_gcm_throughput": round(aes.s / o, 3),
                "outlive_vs_rsync_aes_gcm_cpu_s": round(ours.cpu_s / aes.cpu_s, 3),
            },
            {
                f"at_least_{GOAL_RATIO}x_rsync_throughput": ratio >= GOAL_RATIO,
                # vacuous (True) where the floor itself is below FLOOR_ALLOWS
                "ge_0_9x_rsync_where_floor_allows": ratio >= GOAL_RATIO
                or floor_ratio < FLOOR_ALLOWS,
                "linkbound_ge_0_95x": bw_ratio >= LINKBOUND_GOAL,
                "cpu_le_1_5x_rsync": cpu_ratio <= CPU_GOAL,
            },
        )
    )


if __name__ == "__main__":
    main()
