"""Launch latency on a warm box: `outlive run` vs a hand-written `ssh box 'setsid nohup ...'`.

Time is measured from the command's start until the job is running (it creates a marker file,
which we see through the testbed box's shared filesystem). outlive's figure includes its own CLI
start-up, the rsync delta push with deploy manifest, and the agent launch with the manifest check.

    python bench/launch_latency.py [--quick] [--box NAME]
"""

from __future__ import annotations

import shlex
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, box_bench, median, outlive, result_line, table, time_until_file


def main() -> None:
    box, proj, workdir, reps = box_bench(__doc__ or "", "launch-bench", 3, 10)
    (proj / "train.py").write_text("print('hello')\n")
    outlive(proj, "push", "box")  # warm: the master is up and the tree is already there
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
    print(f"launch latency on a warm testbed box, {reps} launches each (median)")
    print(table([("hand-written ssh setsid nohup", h), ("outlive run (push + launch)", o)], h))
    print("reported elsewhere: SkyPilot exec on an existing cluster ~7.7 s; dstack 10-15 s")
    print(
        result_line(
            "launch_latency",
            {"outlive_run_s": round(o, 4), "ssh_nohup_s": round(h, 4)},
            {"outlive_vs_ssh_nohup": round(o / h, 3)},
            {"within_2x_of_ssh_nohup": o <= 2 * h, "under_1s": o < 1.0},
        )
    )


if __name__ == "__main__":
    main()
