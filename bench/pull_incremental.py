"""Pulling a run again as it goes: `outlive pull` vs plain rsync, when the run has written one
new checkpoint since the last pull (and when it has written nothing).

The case of a long run pulled now and then: its checkpoint directory holds CKPTS checkpoints
already pulled and proven, and one more lands before each measured pull. rsync moves only the
new file (its quick check skips the rest: no proof of anything). By hand, the proof means
hashing the whole tree on both ends again (`sha256sum`, as a careful user would). outlive reads
only what changed since its last pull at both ends (the hash caches: a file keeps its hash
while its size, mtime, inode and ctime hold), so its work grows with the new data, not with the
run; `pull --rehash` is the same pull reading every byte (what every pull did before).

Each measured command pays for its own ssh connection. Rounds alternate between the sides;
each side keeps its own destination across rounds (that is the point).

    python bench/pull_incremental.py [--quick] [--box NAME] [--ckpt-mib N] [--ckpts N]
                                     [--reps N]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, result_line
from pull_throughput import PullBench, Runs, drop_master

from outlive import wire

# A file hashed within this long of its last change is read again next time (hash_cache):
# the bench lets the tree settle as a real run's older checkpoints have.
SETTLE_S = wire.RACY_MARGIN_NS / 1e9 + 0.3


def write_ckpt(path: Path, size_bytes: int) -> None:
    """A checkpoint-sized file of random bytes, written and renamed into place (as outlive's
    Checkpointer and most trainers' save do)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as out:
        left = size_bytes
        while left > 0:
            chunk = os.urandom(min(1 << 20, left))
            out.write(chunk)
            left -= len(chunk)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 x 16 MiB checkpoints, 3 rounds")
    ap.add_argument("--box", default="pullbench", help="testbed box name (its own by default)")
    ap.add_argument("--ckpt-mib", type=int, default=None, help="one checkpoint (default 64)")
    ap.add_argument("--ckpts", type=int, default=None, help="checkpoints already pulled (16)")
    ap.add_argument("--reps", type=int, default=None, help="rounds (default 5, quick 3)")
    args = ap.parse_args()
    ckpt_bytes = (args.ckpt_mib or (16 if args.quick else 64)) << 20
    ckpts = args.ckpts or (8 if args.quick else 16)
    reps = args.reps or (3 if args.quick else 5)

    load_start = os.getloadavg()
    with PullBench.up(args.box, "pull-incr") as bench:
        box, meter, local, ckpt = bench.box, bench.meter, bench.local, bench.ckpt
        for i in range(ckpts):
            write_ckpt(ckpt / f"step-{i:06d}.bin", ckpt_bytes)
        cfg = str(box.ssh_config)
        src, rsync = bench.src, bench.rsync
        mirror, ours_dir, full_dir = local / "rsync", local / "outlive", local / "rehash"
        pull = [OUTLIVE, "pull", bench.run_id, "--json"]

        def outlive_pull(dest: Path, runs: Runs | None, *extra: str) -> dict[str, object]:
            drop_master(box)  # each measured pull pays for its own connection, as rsync does
            meter.run([*pull, "--to", str(dest), *extra], runs, cwd=bench.proj)
            doc: dict[str, object] = json.loads(meter.last_stdout)
            if not (dest / "PULL_VERIFIED.json").exists():
                raise RuntimeError("outlive pull did not verify")
            return doc

        def by_hand(dest: Path, runs: Runs) -> None:
            """rsync, then sha256sum of the whole tree on both ends (the proof by hand)."""
            t0 = time.perf_counter()
            meter.run(["ssh", "-F", cfg, box.name,
                       f"cd {shlex.quote(str(ckpt))} && find . -type f -print0 | sort -z | "
                       "xargs -0 sha256sum > /dev/null"])  # fmt: skip
            meter.run([*rsync, src, f"{dest}/"])
            meter.run(["sh", "-c", f"cd {shlex.quote(str(dest))} && find . -type f -print0 | "
                       "sort -z | xargs -0 sha256sum > /dev/null"])  # fmt: skip
            runs.seconds.append(time.perf_counter() - t0)

        # The runs so far: pulled and proven once by each side, then left to settle, and pulled
        # once more by outlive (the files it landed settle here too), as a run pulled now and
        # then has been.
        time.sleep(SETTLE_S)
        meter.run([*rsync, src, f"{mirror}/"])
        hand_dir = local / "by-hand"
        meter.run([*rsync, src, f"{hand_dir}/"])
        outlive_pull(ours_dir, None)
        outlive_pull(full_dir, None)
        time.sleep(SETTLE_S)
        outlive_pull(ours_dir, None)

        plain, hand, ours, full = Runs(), Runs(), Runs(), Runs()
        same_plain, same_ours = Runs(), Runs()
        reused: list[int] = []
        for i in range(reps):
            write_ckpt(ckpt / f"step-{ckpts + i:06d}.bin", ckpt_bytes)  # the run saved again
            time.sleep(SETTLE_S)  # the older ones were settled long ago on a real run
            meter.run([*rsync, src, f"{mirror}/"], plain)
            by_hand(hand_dir, hand)
            reply = outlive_pull(ours_dir, ours)
            reused.append(int(reply["hashes_reused"]["box_files"]))  # type: ignore[index]
            outlive_pull(full_dir, full, "--rehash")
            # nothing new: the same again
            meter.run([*rsync, src, f"{mirror}/"], same_plain)
            outlive_pull(ours_dir, same_ours)
        report(
            ckpt_bytes, ckpts, reps, plain, hand, ours, full, same_plain, same_ours, reused,
            meter.counted_by, load_start,
        )  # fmt: skip


def report(
    ckpt_bytes: int,
    ckpts: int,
    reps: int,
    plain: Runs,
    hand: Runs,
    ours: Runs,
    full: Runs,
    same_plain: Runs,
    same_ours: Runs,
    reused: list[int],
    counted_by: str,
    load_start: tuple[float, float, float],
) -> None:
    mib = ckpt_bytes / (1 << 20)
    load = os.getloadavg()
    print(
        f"pull again after one new {mib:.0f} MiB checkpoint, {ckpts}..{ckpts + reps - 1} "
        f"already pulled ({ckpts * mib:.0f}+ MiB), {reps} round(s), median; "
        f"{os.cpu_count()} CPUs shared with the box; load average {load_start[0]:.2f} at the "
        f"start, {load[0]:.2f} at the end"
    )
    print(f"{'what':52s}  seconds  vs rsync  CPU-s (here+box)")
    rows = [
        ("rsync -a (moves the new file; no proof)", plain, plain.s),
        ("by hand: rsync -a + sha256sum of the tree, both ends", hand, plain.s),
        ("outlive pull (hashes only what changed, both ends)", ours, plain.s),
        ("outlive pull --rehash (reads every byte again)", full, plain.s),
        ("nothing new: rsync -a", same_plain, same_plain.s),
        ("nothing new: outlive pull", same_ours, same_plain.s),
    ]
    for name, runs, ref in rows:
        cpu = f"{runs.cpu_s:6.2f}" if runs.here_cpu_s else "     -"
        print(f"{name:52s}  {runs.s:7.3f}  {ref / runs.s:6.2f}x  {cpu}")
    print(f"CPU-seconds counted by {counted_by}; files whose hash the box reused per round: "
          f"{reused}")  # fmt: skip
    ratio, same_ratio = plain.s / ours.s, same_plain.s / same_ours.s
    print(
        result_line(
            "pull_incremental",
            {
                "ckpt_bytes": ckpt_bytes,
                "ckpts_already_pulled": ckpts,
                "rsync_s": round(plain.s, 3),
                "by_hand_rsync_sha256_s": round(hand.s, 3),
                "outlive_pull_s": round(ours.s, 3),
                "outlive_pull_rehash_s": round(full.s, 3),
                "unchanged_rsync_s": round(same_plain.s, 3),
                "unchanged_outlive_s": round(same_ours.s, 3),
                "rsync_cpu_s": round(plain.cpu_s, 3),
                "outlive_cpu_s": round(ours.cpu_s, 3),
                "outlive_rehash_cpu_s": round(full.cpu_s, 3),
                "box_files_reused": reused,
                "load_avg_1m_start": round(load_start[0], 2),
                "load_avg_1m_end": round(load[0], 2),
            },
            {
                "outlive_vs_rsync": round(ratio, 3),
                "outlive_vs_by_hand": round(hand.s / ours.s, 3),
                "outlive_vs_rehash": round(full.s / ours.s, 3),
                "unchanged_outlive_vs_rsync": round(same_ratio, 3),
            },
            {
                "faster_than_by_hand_proof": ours.s < hand.s,
                "faster_than_rehash": ours.s < full.s,
            },
        )
    )


if __name__ == "__main__":
    main()
