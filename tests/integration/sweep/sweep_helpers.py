"""Helpers for the sweep tests: a project whose items train the repo's resumable example, the
uninterrupted reference of each item, and the registry's runs of a sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from local_helpers import Project, clean_env

from outlive.store import RunRecord, Store
from outlive.testing import Box

EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def train_sweep(
    proj: Path, name: str, steps: list[int], sleep_s: float, file: str = "sweep.toml"
) -> Path:
    """A sweep file whose items run train_numpy.py for each number of ``steps``."""
    command = [
        sys.executable,
        "train_numpy.py",
        "--steps",
        "{steps}",
        "--save-every",
        "5",
        "--step-sleep-s",
        str(sleep_s),
    ]
    path = proj / file
    path.write_text(
        f"name = {json.dumps(name)}\ncommand = {json.dumps(command)}\n"
        f"[grid]\nsteps = {json.dumps(steps)}\n"
    )
    (proj / "train_numpy.py").write_bytes(EXAMPLE.read_bytes())
    return path


def reference(tmp: Path, steps: int) -> dict[str, np.ndarray]:
    """The final weights of an uninterrupted run of ``steps`` steps (no sleep: same bits)."""
    ckpt = tmp / f"reference-{steps}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["OUTLIVE_CKPT_DIR"] = str(ckpt)
    subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", str(steps), "--step-sleep-s", "0"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return final_weights(ckpt)


def final_weights(ckpt_dir: Path) -> dict[str, np.ndarray]:
    with np.load(ckpt_dir / "final.npz") as z:
        return {k: z[k] for k in z.files}


def assert_bit_identical(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].tobytes() == want[key].tobytes(), key


def runs_of(proj: Path, sweep: str) -> dict[str, list[RunRecord]]:
    """The registry's runs of each item of ``sweep`` (by run name), oldest first."""
    out: dict[str, list[RunRecord]] = {}
    for rec in Store(proj / ".outlive").all():
        if rec.name.startswith(sweep + "."):
            out.setdefault(rec.name, []).append(rec)
    return out


def sweep_status(proj: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [OUTLIVE, "sweep", "status", "--json", *args],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def assert_result(tmp: Path, ckpt_dir: str, steps: int) -> None:
    """The run's final weights are bit-identical to an uninterrupted run of ``steps`` steps."""
    assert_bit_identical(final_weights(Path(ckpt_dir)), reference(tmp, steps))


def start_sweep(proj: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``outlive sweep ARGS`` in the background (a client the test may SIGKILL)."""
    return subprocess.Popen(
        [OUTLIVE, "sweep", *args],
        cwd=proj,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def box_project(tmp_path: Path, boxes: tuple[Box, Box], tag: str) -> Project:
    proj = tmp_path / "proj"
    proj.mkdir()
    lines = []
    for label, box in zip("ab", boxes, strict=True):
        lines.append(f"[targets.{label}]")
        for key, value in box.target.items():
            if key in ("workdir", "durable"):
                value = f"{value}/{tag}"
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("kill_grace_s = 2")
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    return Project(proj, clean_env())
