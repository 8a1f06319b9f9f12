"""A local outlive project whose target ``kg`` is the Kaggle fake, driven through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
ENDED = ("succeeded", "failed", "cancelled", "vanished")


class KaggleProject:
    def __init__(self, root: Path, fake: dict[str, Any], **target: Any) -> None:
        self.dir = root / "proj"
        self.dir.mkdir(parents=True)
        self.env = dict(os.environ, **fake["env"])
        table = {**fake["target"], **target}
        lines = ["[project]", 'name = "proj"', "", "[targets.kg]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        (self.dir / "outlive.toml").write_text("\n".join(lines) + "\n")
        (self.dir / EXAMPLE.name).write_bytes(EXAMPLE.read_bytes())

    def cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [OUTLIVE, *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode in ok, (
            f"outlive {' '.join(args)} -> {done.returncode}\n{done.stderr}"
        )
        return done

    def run(self, name: str, *command: str) -> str:
        out = self.cli("run", "-t", "kg", "--json", "--name", name, "--", *command)
        return str(json.loads(out.stdout)["run_id"])

    def until_ended(self, run_id: str, deadline_s: float) -> list[dict[str, Any]]:
        """Every status row seen (a look each), until the run ended."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            row = json.loads(self.cli("status", "--json", run_id, ok=(0, 1)).stdout)["runs"][0]
            seen.append(row)
            if row["state"] in ENDED:
                return seen
            time.sleep(0.3)
        raise AssertionError(f"run {run_id} did not end in {deadline_s:g} s: {seen[-1:]}")
