"""Status latency: `outlive status` of 10 runs vs a bare multiplexed `ssh box true` and vs a
fresh `ssh box true` (a new connection each time, as a hand-written status check would make).

    python bench/status_latency.py [--quick] [--box NAME]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, box_bench, median, outlive, result_line, table, timed


def main() -> None:
    box, proj, _, reps = box_bench(__doc__ or "", "status-bench", 5, 20)
    run_ids = [
        outlive(proj, "run", "-t", "box", "--name", f"s{i}", "--", "sleep", "120").stdout.split()[
            -1
        ]
        for i in range(10)
    ]
    cfg = str(box.ssh_config)
    mux = [
        "ssh",
        "-F",
        cfg,
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPath=/tmp/ob-bench-%C",
        "-o",
        "ControlPersist=60",
        box.name,
        "true",
    ]
    fresh = ["ssh", "-F", cfg, "-o", "ControlPath=none", box.name, "true"]
    subprocess.run(mux, check=True)  # start the bare master once
    direct_env = dict(os.environ, OUTLIVE_NO_DAEMON="1")
    try:
        outlive(proj, "status", "--json")  # the first look starts the daemon...
        wait_for_daemon(proj)  # ...which answers from the next look on
        st = [timed(lambda: outlive(proj, "status", "--json")) for _ in range(reps)]
        dr = [
            timed(lambda: subprocess.run([OUTLIVE, "status", "--json"], cwd=proj, env=direct_env))
            for _ in range(reps)
        ]
        py = [timed(lambda: subprocess.run([sys.executable, "-c", "pass"])) for _ in range(reps)]
        mx = [timed(lambda: subprocess.run(mux, check=True)) for _ in range(reps)]
        fr = [timed(lambda: subprocess.run(fresh, check=True)) for _ in range(reps)]
    finally:
        for rid in run_ids:
            outlive(proj, "cancel", rid)
    s, d, m, f, p = median(st), median(dr), median(mx), median(fr), median(py)
    print(f"status of 10 runs on a warm testbed box, {reps} looks each (median)")
    print(
        table(
            [
                ("ssh true (multiplexed)", m),
                ("ssh true (fresh connection)", f),
                ("outlive status --json (10 runs)", s),
                ("  the same, daemon off", d),
                ("floor: python -c pass (this venv)", p),
            ],
            m,
        )
    )
    print(
        result_line(
            "status_latency",
            {
                "outlive_status_s": round(s, 4),
                "outlive_status_no_daemon_s": round(d, 4),
                "ssh_mux_true_s": round(m, 4),
                "ssh_fresh_true_s": round(f, 4),
                "python_start_s": round(p, 4),
            },
            {
                "status_vs_mux_true": round(s / m, 3),
                "status_vs_fresh_true": round(s / f, 3),
                "no_daemon_vs_mux_true": round(d / m, 3),
                "no_daemon_vs_fresh_true": round(d / f, 3),
                "python_start_vs_mux_true": round(p / m, 3),
            },
            {"within_1_5x_of_mux_true": s <= 1.5 * m, "at_most_half_of_fresh": s <= 0.5 * f},
        )
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
