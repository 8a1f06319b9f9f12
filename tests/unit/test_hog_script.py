"""scripts/hog.sh: one busy loop per core while a command runs, none left after it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOG = ROOT / "scripts" / "hog.sh"

# Runs under the hog: counts the busy loops whose parent is the hog script (its own parent).
COUNT = (
    'for p in /proc/[0-9]*; do [ "$(cut -d" " -f4 "$p/stat" 2>/dev/null)" = "$PPID" ] && '
    'grep -q "PDEATH[S]IG" "$p/cmdline" 2>/dev/null && echo "$p"; done | wc -l; exit 3'
)


def test_hog_runs_one_loop_per_core_and_passes_the_exit_status_through() -> None:
    done = subprocess.run(
        ["bash", str(HOG), "sh", "-c", COUNT],
        env=dict(os.environ, HOG_PROCS="2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == ["2"], done.stdout
    assert "2 busy loop(s) at normal priority" in done.stderr


def test_hog_without_a_command_is_a_usage_error() -> None:
    done = subprocess.run(["bash", str(HOG)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr
