"""The README's examples are executed, so they cannot drift from the code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from outlive.testing import DEADLINE_S, wait_until

ROOT = Path(__file__).resolve().parents[3]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _run_example(tmp_path: Path, **kw: object) -> subprocess.Popen[str]:
    script = tmp_path / "train.py"
    script.write_text(_python_blocks()[0])
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(tmp_path / "ckpt"))
    env["OUTLIVE_PROGRESS_FILE"] = str(tmp_path / "progress.jsonl")
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[arg-type]
    )


def test_readme_training_example_runs_and_checkpoints(tmp_path: Path) -> None:
    proc = _run_example(tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("done: w=")
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step-*.ckpt"))[-1].startswith(
        "step-000000000200"
    )
    assert (tmp_path / "progress.jsonl").read_text().count("\n") == 200


def test_readme_example_resumes_to_the_same_result_after_sigterm(tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    reference = _run_example(tmp_path / "ref")
    ref_out, _ = reference.communicate(timeout=60)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # Slow the loop down just enough to signal it mid-run: the example is pure Python and fast.
    script = _python_blocks()[0].replace(
        "    step += 1\n", "    step += 1\n    __import__('time').sleep(0.005)\n"
    )
    (run_dir / "train.py").write_text(script)
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(run_dir / "ckpt"))
    env["OUTLIVE_PROGRESS_FILE"] = str(run_dir / "progress.jsonl")
    proc = subprocess.Popen(
        [sys.executable, "train.py"], env=env, cwd=run_dir, text=True, stdout=subprocess.PIPE
    )
    prog = run_dir / "progress.jsonl"
    wait_until(lambda: prog.exists() and prog.read_text().count("\n") >= 60, "60 steps")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 75
    again = subprocess.run(
        [sys.executable, "train.py"],
        env=env,
        cwd=run_dir,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == ref_out
