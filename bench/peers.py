"""Peers side by side on this machine, in one run: outlive's local-target launch and status
against Ray Jobs, and outlive's Slurm goodput under preemption against submitit's Checkpointable
(median of 3 runs of ``slurm_goodput``).

Ray: ``ray start --head`` (a throwaway venv under ~/.cache/outlive/bench/ray-venv, made on first
use; never an outlive dependency), then per launch ``ray job submit --no-wait -- CMD`` and per
look ``ray job status ID``, timed as the user waits for them. outlive: ``outlive run -t local --
CMD`` (which returns once the job runs, a stricter promise than Ray's ``--no-wait``) and
``outlive status --json RUN`` with its warm daemon. Both run the same command; each side's time
until that command is running (it touches a file) is reported too.

    uv run --with submitit python bench/peers.py [--quick] [--no-slurm] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_1min, median, outlive, result_line, timed, wait_for_file


def marker_job(marker: Path) -> list[str]:
    return ["sh", "-c", f"touch {shlex.quote(str(marker))}; sleep 3"]


def outlive_side(reps: int) -> dict[str, float]:
    proj = Path(tempfile.mkdtemp(prefix="outlive-bench-peers-"))
    (proj / "outlive.toml").write_text("# the embedded local target only\n")
    launch, running, looks, ids = [], [], [], []
    for i in range(reps):
        marker = proj / f"m{i}-{uuid.uuid4().hex[:6]}"
        t0 = time.perf_counter()
        out = outlive(proj, "run", "-t", "local", "--name", f"p{i}", "--", *marker_job(marker))
        launch.append(time.perf_counter() - t0)
        running.append(wait_for_file(marker) - t0)
        ids.append(out.stdout.split()[-1])
    outlive(proj, "status", "--json")  # starts the daemon; the looks below are warm
    time.sleep(0.5)
    for rid in ids:
        looks.append(timed(lambda rid=rid: outlive(proj, "status", "--json", rid)))
    return {"launch_s": median(launch), "running_s": median(running), "status_s": median(looks)}


def ray_side(reps: int) -> dict[str, float]:
    from _ray import RayHead, job_id_of

    last: Exception | None = None
    for _ in range(3):  # a loaded machine can make the head miss Ray's own 30 s start-up limit
        head = RayHead()
        try:
            ready_s = head.wait_ready()
            return _ray_timings(head, ready_s, reps, job_id_of)
        except (RuntimeError, TimeoutError) as exc:
            last = exc
            tail = Path(head.log.name).read_text(errors="replace").strip().splitlines()[-1:]
            print(f"Ray head attempt failed ({exc}): {tail}")
        finally:
            head.stop()
    raise RuntimeError(f"Ray did not start here: {last}")


def _ray_timings(head: Any, ready_s: float, reps: int, job_id_of: Any) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="ray-peers-"))
    launch, running, looks, ids = [], [], [], []
    for i in range(reps):
        marker = work / f"m{i}-{uuid.uuid4().hex[:6]}"
        t0 = time.perf_counter()
        done = head.job("submit", "--no-wait", "--", *marker_job(marker))
        launch.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"ray job submit failed: {done.stderr[-500:]}")
        ids.append(job_id_of(done.stdout + done.stderr))
        running.append(wait_for_file(marker, timeout_s=120) - t0)
    for i in range(reps):
        t0 = time.perf_counter()
        done = head.job("status", ids[i % len(ids)])
        looks.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"ray job status failed: {done.stderr[-500:]}")
    return {
        "start_s": ready_s,
        "launch_s": median(launch),
        "running_s": median(running),
        "status_s": median(looks),
    }


def slurm_side(quick: bool, runs: int) -> dict[str, Any]:
    """``slurm_goodput`` ``runs`` times on one testbed cluster; medians of both goodputs."""
    import slurm_goodput as sg

    from outlive.testing.slurm import SlurmCluster

    steps, sleep_s, period_s, notices = (300, 0.05, 4.0, 3) if quick else (900, 0.05, 10.0, 3)
    work_s = steps * sleep_s
    try:  # the training class travels by value: the job cannot import this bench's modules
        import cloudpickle

        cloudpickle.register_pickle_by_value(sg)
    except ImportError:
        pass  # no submitit (and so no cloudpickle): run_submitit says so
    cluster = SlurmCluster.up("peersgoodput")
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    try:
        print(f"  slurm warm-up job (the scheduler's first pass): {sg.warm_up(cluster):.2f} s")
        for k in range(runs):
            root = Path(tempfile.mkdtemp(prefix=f"peers-{k}-", dir=cluster.shared))
            ref = sg.reference(root, steps)
            # Alternate which side goes first (A B, B A, A B): neither always meets the cluster
            # right after the other's job.
            if k % 2 == 0:
                o = sg.run_outlive(cluster, root, steps, sleep_s, period_s, notices)
                t = sg.run_submitit(cluster, root, steps, sleep_s, period_s, notices)
            else:
                t = sg.run_submitit(cluster, root, steps, sleep_s, period_s, notices)
                o = sg.run_outlive(cluster, root, steps, sleep_s, period_s, notices)
            if t is None:
                raise RuntimeError("submitit is not installed; `uv run --with submitit ...`")
            for x in (o, t):  # a job that failed has no goodput to speak of
                x["ok"] = x["state"] == "COMPLETED" and x["weights"] is not None
                x["ok"] = x["ok"] and sg.same(x["weights"], ref)
            ours.append(o)
            theirs.append(t)
            gaps_o, gaps_t = ([round(g, 2) for g in x["gaps_s"]] for x in (o, t))
            print(
                f"  slurm run {k + 1}: outlive {work_s / o['wall_s']:.3f} (wall "
                f"{o['wall_s']:.1f} s, notice-to-running {gaps_o} s, save {o['save_s']} s), "
                f"submitit {work_s / t['wall_s']:.3f} (wall {t['wall_s']:.1f} s, "
                f"notice-to-running {gaps_t} s)"
            )
            print(f"    outlive per notice: {o['breakdown']}")
    finally:
        cluster.down()
    tables: dict[str, dict[str, list[float]]] = {"outlive": {}, "submitit": {}}
    for side, results in (("outlive", ours), ("submitit", theirs)):
        for r in results:
            for label, values in r["phases"].items():
                tables[side].setdefault(label, []).extend(values)
    sg.print_phases(tables)
    g_ours = [work_s / o["wall_s"] if o["ok"] else 0.0 for o in ours]
    g_theirs = [work_s / t["wall_s"] if t["ok"] else 0.0 for t in theirs]
    return {
        "work_s": work_s,
        "notices": notices,
        "outlive_goodputs": g_ours,
        "submitit_goodputs": g_theirs,
        "outlive_goodput": statistics.median(g_ours),
        "submitit_goodput": statistics.median(g_theirs),
        "outlive_gap_s": statistics.median([g for o in ours for g in o["gaps_s"]] or [0.0]),
        "submitit_gap_s": statistics.median([g for t in theirs for g in t["gaps_s"]] or [0.0]),
        "all_ok": all(o["ok"] and o["restarts"] == notices for o in ours),
        "breakdown": [b for o in ours for b in o["breakdown"]],
        "submitit_ok": all(t["ok"] for t in theirs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions, short Slurm runs")
    ap.add_argument("--no-ray", action="store_true", help="skip Ray Jobs")
    ap.add_argument("--no-slurm", action="store_true", help="skip the Slurm goodput")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, as it goes
    reps = 5 if args.quick else 15
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # it would slow every CLI start here
    figures: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    goals: dict[str, bool] = {}
    print(f"load average at start: {load_1min()}")

    ours = outlive_side(reps)
    figures.update({f"outlive_{k}": round(v, 4) for k, v in ours.items()})
    if not args.no_ray:
        ray = ray_side(reps)
        figures.update({f"ray_{k}": round(v, 4) for k, v in ray.items()})
        ratios["ray_vs_outlive_launch"] = round(ray["launch_s"] / ours["launch_s"], 2)
        ratios["ray_vs_outlive_running"] = round(ray["running_s"] / ours["running_s"], 2)
        ratios["ray_vs_outlive_status"] = round(ray["status_s"] / ours["status_s"], 2)
        goals["launch_4x_faster_than_ray"] = ray["launch_s"] >= 4 * ours["launch_s"]
        goals["status_10x_faster_than_ray"] = ray["status_s"] >= 10 * ours["status_s"]
        print(f"{'local target, median of ' + str(reps):<36} {'outlive':>8} {'Ray Jobs':>9}")
        for key, what in (
            ("launch_s", "launch (the CLI returns)"),
            ("running_s", "launch until the job runs"),
            ("status_s", "status of one run"),
        ):
            print(f"{what:<36} {ours[key]:8.3f} {ray[key]:9.3f}")
        print(f"{'ray start --head until jobs go in':<36} {'':>8} {ray['start_s']:9.1f}")
    if not args.no_slurm:
        sl = slurm_side(args.quick, 3)
        figures.update(
            {
                "slurm_work_s": sl["work_s"],
                "slurm_outlive_goodput": round(sl["outlive_goodput"], 4),
                "slurm_submitit_goodput": round(sl["submitit_goodput"], 4),
                "slurm_outlive_goodputs": [round(g, 4) for g in sl["outlive_goodputs"]],
                "slurm_submitit_goodputs": [round(g, 4) for g in sl["submitit_goodputs"]],
                "slurm_outlive_notice_to_running_s": round(sl["outlive_gap_s"], 3),
                "slurm_submitit_notice_to_running_s": round(sl["submitit_gap_s"], 3),
            }
        )
        for part in ("forward_s", "save_s", "restart_s"):  # where a notice's seconds went
            values = [b[part] for b in sl["breakdown"]]
            figures[f"slurm_outlive_notice_{part}"] = round(median(values), 3) if values else None
        ratios["outlive_vs_submitit_goodput"] = round(
            sl["outlive_goodput"] / sl["submitit_goodput"], 3
        )
        goals["goodput_ge_submitit"] = sl["outlive_goodput"] >= sl["submitit_goodput"]
        goals["slurm_outlive_bit_identical_every_run"] = bool(sl["all_ok"])
        print(
            f"Slurm goodput, {sl['notices']} notices, median of 3: outlive "
            f"{sl['outlive_goodput']:.3f}, submitit {sl['submitit_goodput']:.3f}"
        )
    figures["load_average_1min"] = load_1min()
    print(result_line("peers", figures, ratios, goals))


if __name__ == "__main__":
    main()
