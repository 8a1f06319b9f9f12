"""A local outlive project whose target ``k8s`` is the test cluster, driven through the real
CLI; the example training command and its uninterrupted reference weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from outlive.testing.k8s import K8sCluster

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
DEADLINE_S = 90.0
ENDED = ("succeeded", "failed", "cancelled", "vanished")


class Project:
    """A local project of its own (its own name, so its own workdir on the claim) whose target
    ``k8s`` is the test cluster."""

    def __init__(self, root: Path, k8s: K8sCluster, **options: Any) -> None:
        self.k8s = k8s
        self.name = f"p-{uuid.uuid4().hex[:8]}"
        self.dir = root / self.name
        self.dir.mkdir()
        doc = k8s.doc()
        self.env = dict(os.environ, **doc["env"])
        target = {**doc["target"], **options}
        lines = ["[project]", f'name = "{self.name}"', "", "[targets.k8s]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in target.items()]
        (self.dir / "outlive.toml").write_text("\n".join(lines) + "\n")
        (self.dir / "train_numpy.py").write_bytes(EXAMPLE.read_bytes())

    @property
    def claim_workdir(self) -> Path:
        """The workdir as this machine sees it: the claim's directory (/checkpoints in a pod)."""
        return self.k8s.volumes / "outlive-ckpt" / self.name

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [OUTLIVE, *args], cwd=self.dir, capture_output=True, text=True, timeout=120,
            env=self.env,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"outlive {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
        return proc

    def run(self, *cmd: str, name: str) -> str:
        out = self.cli("run", "-t", "k8s", "--json", "--name", name, "--", *cmd)
        return str(json.loads(out.stdout)["run_id"])

    def status(self, run_id: str) -> dict[str, Any]:
        out = self.cli("status", "--json", run_id, check=False)
        assert out.returncode in (0, 1), out.stderr
        runs: list[dict[str, Any]] = json.loads(out.stdout)["runs"]
        return runs[0]

    def wait(
        self, run_id: str, pred: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_S
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status(run_id)
            if pred(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last status {st}")

    def step(self, run_id: str) -> int:
        """The job's last progress step, read from its records on the claim."""
        path = self.claim_workdir / ".outlive" / "runs" / run_id / "progress.jsonl"
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return 0
        for line in reversed(lines):
            try:
                return int(json.loads(line).get("step", 0))
            except ValueError:
                continue
        return 0


def toml_value(value: object) -> str:
    """A TOML value (inline tables for dicts) from plain JSON-like data."""
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def train_cmd(steps: int, sleep_s: float, script: str = "train_numpy.py") -> list[str]:
    return [sys.executable, script, "--steps", str(steps), "--save-every", "10",
            "--step-sleep-s", str(sleep_s)]  # fmt: skip


def reference_weights(tmp_path: Path, steps: int) -> dict[str, np.ndarray]:
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(tmp_path / "ref"))
    env.pop("OUTLIVE_PROGRESS_FILE", None)
    subprocess.run(train_cmd(steps, 0.0, str(EXAMPLE)), env=env, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    with np.load(tmp_path / "ref" / "final.npz") as z:
        return {k: z[k] for k in z.files}
