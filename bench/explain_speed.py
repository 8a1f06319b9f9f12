"""Explain speed: `outlive explain` over a 100 MB noisy training log vs `grep -E` with the same
patterns (and `grep -F` with the engine's literal keywords), on the same file; and the cold start
of `outlive explain --json` on a small log from a freshly installed package (no `.pyc` yet), vs
`grep -E` of the same patterns on that log.

    python bench/explain_speed.py [--quick] [--mb N]

The log mixes tqdm redraws (carriage returns), ANSI-coloured INFO lines, NCCL chatter, warnings
and pip output, with a few real failures planted at known lines; the bench also checks that
explain finds exactly those, at those lines. `--quick` times one run on the 100 MB log (the full
bench takes the best of three) and fewer cold starts. explain splits a log this big into one
part per usable CPU (`outlive.gotchas.parallel`); the CPU seconds of all parts are printed next to
the wall time, with the load average, since a busy machine stretches the wall time.

Goals (issue 19): 100 MB in at most 2 s; a cold start at most 0.3 s, importing no more than the
matcher needs (no rich, no lifecycle or transport code).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import result_line

import outlive
from outlive.gotchas import CATALOG, explain_file
from outlive.gotchas.parallel import usable_cpus

ESC = "\x1b"
PLANTED = [
    (
        "U6",
        "RuntimeError: [enforce fail at inline_container.cc:424] . unexpected pos 16631 vs 16630",
    ),
    ("U10", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."),
    ("U26", "setup.sh: line 1: $'\\r': command not found"),
    (
        "SLURM4",
        f"{ESC}[31mslurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch{ESC}[0m",
    ),
    (
        "K8S1",
        "Warning  FailedScheduling  2m  0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
    ),
]
ALSO = {"U26": {"GEN4"}}  # one planted line that is also another entry's signature


def noise_block(rnd: random.Random, step: int) -> str:
    """About 6 KB of healthy training log."""
    bar = "".join(
        f"\rEpoch {step // 782}: {p:3d}%|{'#' * (p // 10):<10}| {p * 7}/782 "
        f"[00:{p // 3:02d}<00:{(100 - p) // 3:02d}, 18.{p % 10}it/s, v_num=0, "
        f"train_loss=0.{rnd.randint(100, 999)}]"
        for p in range(0, 101, 4)
    )
    lines = [bar]
    for i in range(30):
        s = step + i
        lines.append(
            f"{ESC}[32m2024-05-01 12:{s // 60 % 60:02d}:{s % 60:02d}{ESC}[0m | "
            f"{ESC}[1mINFO{ESC}[0m | "
            f"step {s} | loss {rnd.random() * 2:.4f} | lr 3.0e-04 | grad_norm {rnd.random():.3f} "
            f"| tok/s {41000 + rnd.randint(-900, 900)}"
        )
    lines += [
        f"gpu-node-3:4242:4301 [0] NCCL INFO Channel 0{step % 2}/02 :    0   1",
        "/usr/lib/python3.10/site-packages/torch/_utils.py:831: UserWarning: TypedStorage is "
        "deprecated.",
        f"Epoch {step // 782}, global step {step}: 'val_acc' reached 0.{rnd.randint(5000, 9999)} "
        f"(best 0.9), saving model to '/workspace/ckpt/step={step}.ckpt' as top 1",
        "Requirement already satisfied: numpy>=1.24 in /opt/conda/lib/python3.10/site-packages",
        "[W socket.cpp:663] [c10d] The client socket has failed to connect to [localhost]:29500.",
    ]
    return "\n".join(lines) + "\n"


def make_log(path: Path, size_mb: float) -> dict[str, int]:
    """Write the log; return planted ID -> line number."""
    rnd = random.Random(5)
    target = int(size_mb * 1_000_000)
    plant_every = max(1, target // (len(PLANTED) + 1))
    expected: dict[str, int] = {}
    line, size, step, next_plant = 1, 0, 0, plant_every
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        while size < target:
            chunk = noise_block(rnd, step)
            if size >= next_plant and len(expected) < len(PLANTED):
                gid, text = PLANTED[len(expected)]
                expected[gid] = line
                chunk = text + "\n" + chunk
                next_plant += plant_every
            f.write(chunk)
            size += len(chunk.encode())
            line += chunk.count("\n")
            step += 30
    return expected


_CLASS_ESCAPES = {"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_"}
_OUTSIDE = {
    "d": "[0-9]",
    "s": "[[:space:]]",
    "S": "[^[:space:]]",
    "w": "[[:alnum:]_]",
    "b": "\\b",
}


def to_ere(regex: str) -> str:
    """Translate one catalog regex to POSIX ERE for grep (lookaheads are dropped)."""
    regex = re.sub(r"\(\?![^)]*\)", "", regex).replace("(?:", "(")
    out, i, in_class = [], 0, False
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex):
            n = regex[i + 1]
            if in_class:
                out.append(_CLASS_ESCAPES.get(n, "\\\\" if n == "\\" else n))
            elif n in _OUTSIDE:
                out.append(_OUTSIDE[n])
            elif n in ".[]()*+?{}|^$\\":
                out.append("\\" + n)
            else:
                out.append(n)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def time_grep(args: list[str], path: Path, runs: int) -> tuple[float, int] | None:
    if shutil.which("grep") is None:
        return None
    env = dict(os.environ, LC_ALL="C")
    best, count = float("inf"), 0
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            ["grep", "-c", *args, str(path)], capture_output=True, text=True, env=env, check=False
        )
        best = min(best, time.perf_counter() - t0)
        if out.returncode > 1:
            raise RuntimeError(f"grep failed: {out.stderr.strip()}")
        count = int(out.stdout.strip() or 0)
    return best, count


SMALL_LOG = (
    "Epoch 1:  12%|#2        | 94/782 [00:05<00:36, 18.8it/s, loss=0.61]\n"
    "[rank3]:[E321 02:07:08.414640780 ProcessGroupNCCL.cpp:607] [Rank 3] Watchdog caught "
    "collective operation timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, NumelIn=1, "
    "NumelOut=1, Timeout(ms)=600000) ran for 600067 milliseconds before timing out.\n"
)
# What the cold start must not pull in: the human console and the parts that talk to boxes.
HEAVY = ("rich", "outlive.lifecycle", "outlive.transport", "outlive.backends", "outlive.session")
_EXPLAIN = (
    "import sys; sys.argv = ['outlive', 'explain', sys.argv[1], '--json'];"
    "from outlive.cli import main; main()"
)


def fresh_package(tmp: Path) -> Path:
    """A copy of the installed package without any compiled bytecode, as pip leaves it."""
    dest = tmp / "fresh"
    shutil.copytree(
        Path(outlive.__file__).parent, dest / "outlive", ignore=shutil.ignore_patterns("*.pyc")
    )
    return dest


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (explain's worker processes)."""
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_cmd(cmd: list[str], env: dict[str, str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def cold_start(tmp: Path, patterns: Path, runs: int) -> dict[str, float | bool]:
    """Seconds to explain a small log: fresh package (bytecode never written), warm, and grep."""
    small = tmp / "small.log"
    small.write_text(SMALL_LOG)
    fresh = dict(os.environ, PYTHONPATH=str(fresh_package(tmp)), PYTHONDONTWRITEBYTECODE="1")
    warm = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-c", _EXPLAIN, str(small)]
    out = subprocess.run(cmd, env=fresh, capture_output=True, text=True, check=True)
    found = [m["id"] for m in json.loads(out.stdout)["matches"]]
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]], env=fresh, capture_output=True, text=True
    ).stderr
    imported = {line.split("|")[-1].strip() for line in trace.splitlines() if "|" in line}
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    figures: dict[str, float | bool] = {
        "cold_start_s": round(time_cmd(cmd, fresh, runs), 3),
        "warm_start_s": round(time_cmd(cmd, warm, runs), 3),
        "python_startup_s": round(time_cmd([sys.executable, "-c", "pass"], warm, runs), 3),
        "outlive_modules_imported": len([m for m in imported if m.startswith("outlive")]),
        "small_log_found_x1": found == ["X1"],
        "heavy_imports": bool(heavy),
    }
    if shutil.which("grep") is not None:
        grep = ["grep", "-a", "-c", "-E", "-f", str(patterns), str(small)]
        env = dict(os.environ, LC_ALL="C")
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(grep, env=env, stdout=subprocess.DEVNULL, check=False)
            best = min(best, time.perf_counter() - t0)
        figures["grep_e_small_s"] = round(best, 4)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="one timed run, fewer cold starts (< 1 min)"
    )
    ap.add_argument("--mb", type=float, default=None, help="log size in MB (default 100)")
    args = ap.parse_args()
    size_mb = args.mb or 100.0
    runs = 1 if args.quick else 3

    tmp = Path(tempfile.mkdtemp(prefix="outlive-explain-bench-"))
    try:
        log = tmp / "noisy.log"
        expected = make_log(log, size_mb)
        real_mb = log.stat().st_size / 1e6

        explain_s = cpu_s = float("inf")
        found: dict[str, int] = {}
        for _ in range(runs):
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            found = {m.id: m.line for m in explain_file(log)}
            explain_s = min(explain_s, time.perf_counter() - t0)
            cpu_s = min(cpu_s, cpu_seconds() - c0)
        want = dict(expected)
        for gid, others in ALSO.items():
            want.update({o: expected[gid] for o in others})
        planted_ok = found == want

        patterns = tmp / "patterns.ere"
        patterns.write_text("\n".join(to_ere(p.regex_source) for g in CATALOG for p in g.patterns))
        keywords = tmp / "keywords.txt"
        keywords.write_text("\n".join(sorted({p.keyword for g in CATALOG for p in g.patterns})))
        grep_e = time_grep(["-a", "-E", "-f", str(patterns)], log, runs)
        grep_f = time_grep(["-a", "-F", "-f", str(keywords)], log, runs)
        cold = cold_start(tmp, patterns, 5 if args.quick else 15)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    figures: dict[str, float] = {
        "log_mb": round(real_mb, 1),
        "explain_s": round(explain_s, 3),
        "explain_mb_per_s": round(real_mb / explain_s, 1),
        "explain_s_per_100mb": round(explain_s * 100 / real_mb, 2),
        "explain_cpu_s_per_100mb": round(cpu_s * 100 / real_mb, 2),
        "parts": float(usable_cpus()),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    ratios: dict[str, float] = {}
    rows = [("outlive explain (whole catalog, per-line normalisation)", explain_s, "")]
    if grep_e is not None:
        figures["grep_e_s"] = round(grep_e[0], 3)
        ratios["explain_vs_grep_e"] = round(explain_s / grep_e[0], 2)
        rows.append(("grep -E -f <same patterns as ERE>", grep_e[0], f"{grep_e[1]} lines"))
    if grep_f is not None:
        figures["grep_f_s"] = round(grep_f[0], 3)
        ratios["explain_vs_grep_f"] = round(explain_s / grep_f[0], 2)
        rows.append(("grep -F -f <the engine's keywords>", grep_f[0], f"{grep_f[1]} lines"))
    cold_s = float(cold["cold_start_s"])
    figures.update({k: float(v) for k, v in cold.items() if not isinstance(v, bool)})
    if "grep_e_small_s" in cold:
        ratios["cold_start_vs_grep_e"] = round(cold_s / float(cold["grep_e_small_s"]), 1)
    goals = {
        "planted_gotchas_found_at_their_lines": planted_ok,
        "explain_100mb_at_most_2_s": explain_s * 100 / real_mb <= 2.0,
        "cold_start_at_most_0_3_s": cold_s <= 0.3,
        "cold_start_finds_the_gotcha": bool(cold["small_log_found_x1"]),
        "cold_start_imports_only_the_matcher": not cold["heavy_imports"],
    }

    print(
        f"explain over a {real_mb:.1f} MB noisy log, best of {runs}, in {usable_cpus()} part(s): "
        f"{cpu_s:.2f} CPU-s in all; load average {os.getloadavg()[0]:.2f}"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'what'.ljust(width)}  seconds   vs explain  note")
    for name, secs, note in rows:
        print(f"{name.ljust(width)}  {secs:7.3f}  {explain_s / secs:8.2f}x  {note}")
    print(f"planted {sorted(want)} -> found {sorted(found)}: {'ok' if planted_ok else 'MISMATCH'}")
    print(
        f"cold start of `explain --json` on a small log: {cold_s:.3f} s fresh install, "
        f"{cold['warm_start_s']:.3f} s with bytecode, python alone {cold['python_startup_s']:.3f} s"
        + (f", grep -E {cold['grep_e_small_s']:.4f} s" if "grep_e_small_s" in cold else "")
    )
    print(result_line("explain_speed", figures, ratios, goals))


if __name__ == "__main__":
    main()
