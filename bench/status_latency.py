"""Status latency: `outlive status` of 10 runs against its floor, then 10 targets x 100 runs
(warm daemon and cold), and a look while one target's link is cut.

The floor of a look is a bare interpreter start (``python -c pass`` in this venv: a CLI's package
lives in site-packages, so ``site`` is part of any start) plus one round trip on an open agent
channel (a probe of no runs, timed in-process over the channel the daemon would hold). For
reference: a multiplexed ``ssh box true`` and a fresh one (what a hand-written check makes).

    python bench/status_latency.py [--quick] [--box NAME] [--no-scale]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, load_1min, median, outlive, project_for, result_line, table, timed


def main() -> None:
    from outlive.testing import Box

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions")
    ap.add_argument("--box", default="benchbox", help="testbed box name")
    ap.add_argument("--no-scale", action="store_true", help="skip the 10 x 100 part")
    ap.add_argument("--scale-prefix", default="scale", help="the 10 x 100 part's box names")
    args = ap.parse_args()
    reps = 5 if args.quick else 20
    box = Box.up(args.box)
    sub = f"status-bench-{uuid.uuid4().hex[:8]}"  # no runs of earlier benches to adopt
    proj = project_for(
        dict(box.target, workdir=str(box.workdir / sub), durable=str(box.durable / sub))
    )
    run_ids = [
        outlive(proj, "run", "-t", "box", "--name", f"s{i}", "--", "sleep", "120").stdout.split()[
            -1
        ]
        for i in range(10)
    ]
    cfg = str(box.ssh_config)
    mux_opts = ["-o", "ControlMaster=auto", "-o", "ControlPath=/tmp/ob-bench-%C"]
    mux = ["ssh", "-F", cfg, *mux_opts, "-o", "ControlPersist=60", box.name, "true"]
    fresh = ["ssh", "-F", cfg, "-o", "ControlPath=none", box.name, "true"]
    subprocess.run(mux, check=True)  # start the bare master once
    direct_env = dict(os.environ, OUTLIVE_NO_DAEMON="1")
    quiet = {"capture_output": True}
    try:
        outlive(proj, "status", "--json")  # the first look starts the daemon...
        wait_for_daemon(proj)  # ...which answers from the next look on
        # The looks and the interpreter starts of the floor interleaved, 3x as many as the rest
        # (each costs ~20 ms): on a shared machine the load moves between blocks of runs.
        st, py, bare = [], [], []
        for _ in range(3 * reps):
            st.append(timed(lambda: outlive(proj, "status", "--json")))
            py.append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"])))
            bare.append(timed(lambda: subprocess.run([sys.executable, "-I", "-S", "-c", "pass"])))
        served = daemon_steps(3 * reps)  # the daemon's own account of those looks
        client = client_steps(proj, reps)
        dr = [
            timed(
                lambda: subprocess.run(
                    [OUTLIVE, "status", "--json"], cwd=proj, env=direct_env, **quiet
                )
            )
            for _ in range(reps)
        ]
        rt, probe10 = channel_round_trips(proj, reps)
        mx = [timed(lambda: subprocess.run(mux, check=True)) for _ in range(reps)]
        fr = [timed(lambda: subprocess.run(fresh, check=True)) for _ in range(reps)]
    finally:
        for rid in run_ids:
            outlive(proj, "cancel", rid)
    s, d, m, f, p, c = median(st), median(dr), median(mx), median(fr), median(py), median(rt)
    floor = p + c
    print(
        f"status of 10 runs on a warm testbed box, {3 * reps} looks and interpreter starts "
        f"(interleaved), {reps} of the rest (medians); load {load_1min()}"
    )
    print(
        table(
            [
                ("floor: python -c pass + channel round trip", floor),
                ("  python -c pass (this venv)", p),
                ("  python -I -S -c pass", median(bare)),
                ("  probe of no runs on an open channel", c),
                ("ssh true (multiplexed)", m),
                ("ssh true (fresh connection)", f),
                ("outlive status --json (10 runs)", s),
                ("  the same, daemon off", d),
            ],
            floor,
        )
    )
    print(breakdown(client, served, median(probe10)))
    figures = {
        "outlive_status_s": round(s, 4),
        "outlive_status_no_daemon_s": round(d, 4),
        "floor_s": round(floor, 4),
        "python_start_s": round(p, 4),
        "python_bare_start_s": round(median(bare), 4),
        "channel_round_trip_s": round(c, 4),
        "ssh_mux_true_s": round(m, 4),
        "ssh_fresh_true_s": round(f, 4),
        "probe_10_runs_s": round(median(probe10), 4),
    }
    figures.update({f"client_{k}_ms": v for k, v in client.items()})
    figures.update({f"daemon_{k}_ms": v for k, v in served.items()})
    ratios = {
        "status_vs_floor": round(s / floor, 3),
        "no_daemon_vs_floor": round(d / floor, 3),
        "status_vs_mux_true": round(s / m, 3),
        "status_vs_fresh_true": round(s / f, 3),
    }
    goals = {"status_le_2x_floor": s <= 2 * floor}
    if not args.no_scale:
        from _status_scale import RUNS_PER_TARGET, TARGETS, measure

        sc = measure(reps, args.scale_prefix)
        print(
            f"{TARGETS} targets x {RUNS_PER_TARGET} runs (each target its own box and master; "
            f"setup {sc['setup_s']:.0f} s): warm {sc['warm_s']:.3f} s, no daemon "
            f"{sc['cold_s']:.3f} s; one link cut: the look took {sc['look_during_cut_s']:.2f} s "
            f"(timeout {sc['look_timeout_s']:.0f} s; CLI {sc['cli_look_during_cut_s']:.2f} s), "
            f"the other targets answered by {sc['healthy_targets_during_cut_s']:.3f} s "
            f"(uncut {sc['healthy_targets_uncut_s']:.3f} s); cut rows say: "
            f"{sc['unreachable_sentence']!r}"
        )
        for key in (
            "warm_s", "cold_s", "healthy_targets_uncut_s", "healthy_targets_during_cut_s",
            "cut_target_s", "look_during_cut_s", "cli_look_during_cut_s",
        ):  # fmt: skip
            figures[f"scale_{key}"] = round(sc[key], 4)
        goals["status_scale_warm"] = sc["warm_s"] <= 0.25
        goals["status_scale_cold"] = sc["cold_s"] <= 1.5
        goals["status_cut_isolated"] = bool(sc["isolated"])
    figures["load_average_1min"] = load_1min()
    print(result_line("status_latency", figures, ratios, goals))


def channel_round_trips(proj: Path, reps: int) -> tuple[list[float], list[float]]:
    """One probe of no runs over an open agent channel, as the daemon holds it (in-process);
    and, for the breakdown, the probe a look makes of the project's runs (the same channel)."""
    from outlive.agent.channel import ChannelPool
    from outlive.session import Session

    pool = ChannelPool()
    try:
        session = Session.open(proj, pool=pool)
        backend = session.backend("box")
        backend.probe([], timeout_s=15.0)  # opens the channel
        none = [timed(lambda: backend.probe([], timeout_s=15.0)) for _ in range(reps)]
        dirs = [r.run_dir for r in session.store.all()]
        workdir = session.target("box").placement.workdir
        runs = [timed(lambda: backend.look(dirs, workdir, timeout_s=15.0)) for _ in range(reps)]
        return none, runs
    finally:
        pool.close()


# A served look, step by step, as the console script makes it (outlive.cli.main's fast path):
# each step's time.perf_counter() goes to stderr, then the process ends as the CLI's does.
_CLIENT = """\
import time
t1 = time.perf_counter()
import os
from outlive.cli import main
from outlive.daemon import client
t2 = time.perf_counter()
path, doc = client._daemon_path(), client.status_request(["status", "--json"])
t3 = time.perf_counter()
code, out, err = client.exchange(path, doc)
t4 = time.perf_counter()
client._write(code, out, err)
t5 = time.perf_counter()
os.write(2, f"{t1} {t2} {t3} {t4} {t5}".encode())
os._exit(code)
"""
CLIENT_STEPS = ("start", "imports", "request", "exchange", "write", "exit")


def client_steps(proj: Path, reps: int) -> dict[str, float]:
    """Median ms of each step of a served look in a fresh process: the interpreter's start
    (spawn to the first line), imports, the socket's key and the request, the exchange with
    the daemon, writing the answer, and the process's end."""
    from outlive.daemon import client

    if not hasattr(client, "status_request"):
        return {}  # an outlive before this breakdown (the bench run against an older install)
    rows = []
    for _ in range(reps):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CLIENT], cwd=proj, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, check=True,
        )  # fmt: skip
        t_end = time.perf_counter()
        marks = [t0, *(float(x) for x in done.stderr.split()), t_end]
        rows.append([b - a for a, b in itertools.pairwise(marks)])
    return {k: round(median([r[i] for r in rows]) * 1000, 3) for i, k in enumerate(CLIENT_STEPS)}


def daemon_steps(reps: int) -> dict[str, float]:
    """Median ms of each step of the daemon's last ``reps`` looks, as it timed them."""
    from outlive.daemon import client

    path = client.socket_path()
    reply = client._ask(path, "timings", 5.0) if path is not None else None  # None: no timings
    looks = list(reply["looks"])[-reps:] if isinstance(reply, dict) else []
    if not looks:
        return {}
    return {k: round(median([look[k] for look in looks]), 3) for k in looks[0]}


def breakdown(client: dict[str, float], served: dict[str, float], probe_s: float) -> str:
    c = ", ".join(f"{k} {v:.2f}" for k, v in client.items())
    d = ", ".join(f"{k} {v:.2f}" for k, v in served.items() if k != "total")
    return (
        f"a warm look step by step (median ms): client process: {c}\n"
        f"  inside its exchange, the daemon ({served.get('total', float('nan')):.2f} in all): "
        f"{d}\n  of the look, the probe of the 10 runs over an open channel: "
        f"{probe_s * 1000:.2f} (in-process)"
    )


def wait_for_daemon(proj: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        daemons = json.loads(outlive(proj, "daemon", "status", "--json").stdout)["daemons"]
        if any(d["channels"] for d in daemons):
            return
        time.sleep(0.2)
        outlive(proj, "status", "--json")
    raise TimeoutError("the daemon did not start; see /tmp/outlive-<uid>/d-*.log")


if __name__ == "__main__":
    main()
