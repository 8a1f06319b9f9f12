"""Launch latency on a warm box: `outlive run` vs a hand-written `ssh box 'setsid nohup ...'`.

Time is measured from the command's start until the job is running (it creates a marker file,
which we see through the testbed box's shared filesystem). outlive's figure includes its own CLI
start-up, the push check (the tree is unchanged: nothing is sent) and the agent launch with the
deploy manifest check. The local daemon is started warm first (one ``outlive status``, as a
user's first look does), so each `run` is handed to it and launched over its open agent channel;
with OUTLIVE_NO_DAEMON=1 the CLI launches itself over outlive's warm ControlMaster. The
hand-written launch opens a fresh connection (``ssh box 'cd ... && setsid nohup ... &'``), as
such a one-liner does.
Goals: ``launch_le_hand_fresh`` (no slower than the one-liner) and ``launch_le_0_3s``.

    python bench/launch_latency.py [--quick] [--box NAME]
"""

from __future__ import annotations

import shlex
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    OUTLIVE,
    box_bench,
    load_1min,
    median,
    outlive,
    result_line,
    table,
    time_until_file,
)


def main() -> None:
    box, proj, workdir, reps = box_bench(__doc__ or "", "launch-bench", 3, 10)
    (proj / "train.py").write_text("print('hello')\n")
    outlive(proj, "push", "box")  # warm: the master is up and the tree is already there
    daemon = _warm_daemon(proj)
    cfg = str(box.ssh_config)

    ours, theirs = [], []
    for i in range(reps):
        marker = workdir / f"m-outlive-{i}-{uuid.uuid4().hex[:6]}"
        job = f"touch {shlex.quote(str(marker))}; sleep 2"
        argv = [OUTLIVE, "run", "-t", "box", "--name", f"lat{i}", "--", "sh", "-c", job]
        ours.append(time_until_file(argv, marker, cwd=proj))

        marker = workdir / f"m-ssh-{i}-{uuid.uuid4().hex[:6]}"
        job = f"touch {shlex.quote(str(marker))}; sleep 2"
        remote = (
            f"cd {shlex.quote(str(workdir))} && setsid nohup sh -c {shlex.quote(job)} "
            ">/dev/null 2>&1 </dev/null &"
        )
        theirs.append(time_until_file(["ssh", "-F", cfg, box.name, remote], marker))

    o, h = median(ours), median(theirs)
    print(
        f"launch latency on a warm testbed box, {reps} launches each (median); load {load_1min()}"
    )
    print(daemon)
    print(
        table(
            [
                ("hand-written ssh setsid nohup (fresh connection)", h),
                ("outlive run (CLI start + push check + launch)", o),
            ],
            h,
        )
    )
    print("reported elsewhere: SkyPilot exec on an existing cluster ~7.7 s; dstack 10-15 s")
    print(
        result_line(
            "launch_latency",
            {
                "outlive_run_s": round(o, 4),
                "ssh_nohup_s": round(h, 4),
                "load_average_1min": load_1min(),
                "via_daemon": not daemon.startswith("daemon off"),
            },
            {"outlive_vs_ssh_nohup": round(o / h, 3)},
            {"launch_le_hand_fresh": o <= h, "launch_le_0_3s": o <= 0.3},
        )
    )


def _warm_daemon(proj: Path) -> str:
    """Start the local daemon with one look and wait until it answers; what the runs go through."""
    import json
    import os

    if os.environ.get("OUTLIVE_NO_DAEMON", "") not in ("", "0"):
        return "daemon off (OUTLIVE_NO_DAEMON): each run launches itself over the warm master"
    outlive(proj, "status", "--json")
    for _ in range(200):
        if json.loads(outlive(proj, "daemon", "status", "--json").stdout)["daemons"]:
            return "daemon warm (started by one `outlive status`): each run is launched by it"
        time.sleep(0.05)
    raise RuntimeError("the local daemon did not start; see `outlive daemon status`")


if __name__ == "__main__":
    main()
