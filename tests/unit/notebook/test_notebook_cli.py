"""``outlive notebook colab|gradient`` on bad input: one sentence, non-zero, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HOSTILE = ["a/b", "..", "../x", "a'b", 'a"b', "$(touch x)", "a\nb", " a", ".hidden", ""]


def _refused(tmp_path: Path, *argv: str) -> str:
    """Run ``outlive notebook ARGV...`` in a fresh project; assert it refused in one sentence
    and wrote nothing; its message."""
    (tmp_path / "outlive.toml").write_text('[project]\nname = "proj"\n')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["OUTLIVE_NO_DAEMON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", "from outlive.cli import main; main()", "notebook", *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    return done.stderr


@pytest.mark.parametrize("platform", ["colab", "gradient"])
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_notebook_names_are_one_sentence_and_write_nothing(
    tmp_path: Path, platform: str, name: str
) -> None:
    said = _refused(tmp_path, platform, "--name", name, "--", "python", "t.py")
    assert "--name" in said or "notebook name" in said


@pytest.mark.parametrize("hours", ["0", "-1", "200"])
def test_gradient_auto_shutdown_outside_an_hour_to_a_week_is_refused(
    tmp_path: Path, hours: str
) -> None:
    said = _refused(tmp_path, "gradient", "--name", "toy", "--auto-shutdown-h", hours, "--",
                    "python", "t.py")  # fmt: skip
    assert "--auto-shutdown-h" in said and "hours" in said


def test_gradient_missing_requirements_file_is_refused(tmp_path: Path) -> None:
    said = _refused(tmp_path, "gradient", "--name", "toy", "--requirements", "nope.txt", "--",
                    "python", "t.py")  # fmt: skip
    assert "nope.txt" in said and "--requirements" in said
