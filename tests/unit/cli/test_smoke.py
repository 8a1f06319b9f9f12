"""`outlive smoke`: a short foreground run with OUTLIVE_SMOKE=1 before paying for a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"


def _smoke(tmp_path: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, "smoke", "--json", "--", *cmd],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_smoke_runs_two_steps_of_the_toy_training_and_saves(tmp_path: Path) -> None:
    out = _smoke(tmp_path, sys.executable, str(EXAMPLE), "--save-every", "1")
    doc = json.loads(out.stdout)
    assert out.returncode == 0 and doc["ok"] is True and doc["exit_code"] == 0
    assert doc["checkpoints"]  # the smoke run exercised a real save
    assert not (tmp_path / "checkpoints").exists()  # into a throwaway dir, not the project


def test_smoke_failure_exits_1_and_names_the_gotcha(tmp_path: Path) -> None:
    script = (
        "import sys; sys.stderr.write(\"run.sh: line 2: $'\\\\r': command not found\\n\"); "
        "sys.exit(127)"
    )
    out = _smoke(tmp_path, sys.executable, "-c", script)
    doc = json.loads(out.stdout)
    assert out.returncode == 1 and doc["exit_code"] == 127
    assert [m["id"] for m in doc["matches"]][:2] == ["U26", "GEN4"]


def test_smoke_on_a_terminal_shows_the_output_without_the_strings_a_terminal_acts_on(
    tmp_path: Path,
) -> None:
    """As `logs` does: colours pass, but a window title or a clipboard write (OSC 52) that the
    job printed is not handed to the user's terminal."""
    import os
    import pty

    script = (
        "import sys; sys.stdout.write('\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]0;pwned\\x07"
        "\\x1b[32mgreen\\x1b[0m done\\n')"
    )
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [OUTLIVE, "smoke", "--", sys.executable, "-c", script],
            cwd=tmp_path, stdout=follower, stderr=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the pty's other end is closed: all is read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert b"\x1b[32mgreen\x1b[0m done" in seen
    assert b"]52;" not in seen and b"pwned" not in seen
