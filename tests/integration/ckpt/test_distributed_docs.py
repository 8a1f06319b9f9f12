"""docs/checkpoints.md: the torch.distributed example runs as written on 2 ranks, and the same
script resumes its committed step on 4 ranks (DCP resharding)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch is not installed: uv sync --group ml")

from outlive.ckpt.integrations import dist_commit
from outlive.testing.dist_ckpt import Zygote

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _example() -> str:
    blocks = re.findall(
        r"```python\n(.*?)```", (ROOT / "docs" / "checkpoints.md").read_text(), re.S
    )
    return next(b for b in blocks if "DistributedCheckpointer" in b)


def test_the_distributed_example_runs_and_resumes_at_another_world_size(
    zygote: Zygote, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(_example())
    spec = {
        "scenario": "script",
        "script": str(script),
        "out": str(tmp_path / "first"),
        "env": {"OUTLIVE_CKPT_DIR": str(tmp_path / "ckpt")},
    }
    assert zygote.run(2, spec) == [0, 0]
    first = (tmp_path / "first" / "rank-0.log").read_text()
    assert "done at step 40" in first
    assert dist_commit.committed_steps(tmp_path / "ckpt") == [30, 40]
    assert zygote.run(4, dict(spec, out=str(tmp_path / "second"))) == [0] * 4
    second = (tmp_path / "second" / "rank-0.log").read_text()
    assert second.strip().splitlines()[-1] == first.strip().splitlines()[-1]  # same bits back


PLAIN_FUNCTIONS = """\
import os, sys
import torch
import torch.distributed as dist
from outlive.ckpt.integrations.dist_sharded import load_latest_sharded, save_sharded

dist.init_process_group("gloo")
ckpt = os.environ["OUTLIVE_CKPT_DIR"]
state = {"w": torch.zeros(8)}
step = load_latest_sharded(state, ckpt)  # the default group: no group= argument
if step is None:
    state["w"] += torch.arange(8.0)
    save_sharded(state, ckpt, step=7)
    print("saved 7", flush=True)
else:
    assert torch.equal(state["w"], torch.arange(8.0)), state["w"]
    print(f"loaded {step}", flush=True)
dist.destroy_process_group()
"""


def test_the_plain_functions_work_on_the_default_group(zygote: Zygote, tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_FUNCTIONS)
    spec = {
        "scenario": "script",
        "script": str(script),
        "out": str(tmp_path / "first"),
        "env": {"OUTLIVE_CKPT_DIR": str(tmp_path / "ckpt")},
    }
    assert zygote.run(2, spec) == [0, 0]
    assert "saved 7" in (tmp_path / "first" / "rank-0.log").read_text()
    assert zygote.run(2, dict(spec, out=str(tmp_path / "second"))) == [0, 0]
    assert "loaded 7" in (tmp_path / "second" / "rank-1.log").read_text()
