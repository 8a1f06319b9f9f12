"""Multi-rank checkpoints under real torch.distributed (gloo on CPU, 2-4 forked ranks): a rank
SIGKILLed at random moments never leaves a bad load, one rank's SIGTERM makes every rank save the
same step, and a resume at another world size is bit-identical."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="torch is not installed: uv sync --group ml")

from outlive.ckpt import directory
from outlive.ckpt.integrations import dist_commit
from outlive.testing.dist_ckpt import (
    PEER_LOST_EXIT,
    Zygote,
    kill_round,
    read_json,
    verify_round,
)

# Each test runs several process groups; the zygote that forks them imports torch once.
pytestmark = pytest.mark.slow

REQUEUE = 75


def _spec(tmp_path: Path, **over: Any) -> dict[str, Any]:
    spec = {
        "scenario": "train",
        "dir": str(tmp_path / "ckpt"),
        "out": str(tmp_path / "out"),
        "steps": 10**6,
        "save_every": 1,
        "size_bytes": 1 << 18,
        "timeout_s": 30,
        "seed": 18,
    }
    spec.update(over)
    return spec


def _committed(spec: dict[str, Any]) -> list[int]:
    """The steps committed on disk: step directories with a marker, or DDP's single files."""
    if spec.get("mode") == "replicated":
        return sorted(directory.committed_steps(Path(spec["dir"])))
    return dist_commit.committed_steps(Path(spec["dir"]))


def _kill_loop(
    zygote: Zygote, spec: dict[str, Any], rounds: int, seed: int, world: int = 3
) -> list[int]:
    rng = random.Random(seed)
    loaded: list[int] = []
    for _ in range(rounds):
        killed = kill_round(zygote, world, spec, rng, window_s=0.6)
        codes = killed["codes"]
        assert codes[killed["victim"]] == -signal.SIGKILL
        survivors = [c for r, c in enumerate(codes) if r != killed["victim"]]
        assert survivors == [PEER_LOST_EXIT] * (world - 1), f"survivors did not exit: {codes}"
        check = verify_round(zygote, rng.choice([2, 3, 4]), spec)
        assert check["ok"], f"a bad load after {killed}: {check}"
        assert check["step"] is not None and check["step"] >= killed["committed"], check
        assert check["step"] in _committed(spec)
        loaded.append(check["step"])
    return loaded


def test_a_rank_sigkilled_at_random_moments_never_leaves_a_bad_load(
    zygote: Zygote, tmp_path: Path
) -> None:
    loaded = _kill_loop(zygote, _spec(tmp_path), rounds=3, seed=1804)
    assert loaded == sorted(loaded)  # each round resumed from the last commit and went on


def test_async_saves_with_a_rank_sigkilled_never_leave_a_bad_load(
    zygote: Zygote, tmp_path: Path
) -> None:
    loaded = _kill_loop(zygote, _spec(tmp_path, **{"async": True}), rounds=2, seed=1805)
    assert loaded == sorted(loaded)


def test_ddp_mode_with_a_rank_sigkilled_never_leaves_a_bad_load(
    zygote: Zygote, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, mode="replicated")
    loaded = _kill_loop(zygote, spec, rounds=2, seed=1806, world=2)
    assert loaded == sorted(loaded)


def test_saved_at_four_ranks_loads_bit_identical_at_two_and_three(
    zygote: Zygote, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, steps=6, save_every=2, keep_last=2)
    assert zygote.run(4, spec) == [0, 0, 0, 0]
    # retention: the last two committed steps, nothing else, no leftovers
    assert dist_commit.committed_steps(tmp_path / "ckpt") == [4, 6]
    assert len(list((tmp_path / "ckpt").iterdir())) == 2
    for world in (2, 3):
        check = verify_round(zygote, world, spec)
        assert check == {"ok": True, "step": 6, "codes": [0] * world}


@pytest.fixture(scope="module")
def uninterrupted_digest(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("uninterrupted")
    spec = _spec(root, steps=12, save_every=1000)
    assert zygote.run(3, spec) == [0, 0, 0]
    final = read_json(root / "out" / "final.json")
    assert final is not None and final["step"] == 12
    return str(final["digest"])


@pytest.mark.parametrize("mode", ["sharded", "sharded-async", "replicated"])
def test_one_ranks_sigterm_makes_every_rank_save_the_same_step_and_resume_bit_identical(
    zygote: Zygote, tmp_path: Path, uninterrupted_digest: str, mode: str
) -> None:
    world = 2 if mode == "replicated" else 3
    base = _spec(
        tmp_path, steps=12, save_every=1000, mode=mode.split("-")[0], **{"async": "async" in mode}
    )
    preempted = dict(base, term_rank=world - 1, term_at=5, out=str(tmp_path / "first"))
    assert zygote.run(world, preempted) == [REQUEUE] * world
    steps = [read_json(tmp_path / "first" / f"preempt-{r}.json") for r in range(world)]
    assert steps == [{"step": 5}] * world
    resumed = dict(base, out=str(tmp_path / "second"))
    assert zygote.run(world, resumed) == [0] * world
    assert read_json(tmp_path / "second" / "ready-0.json")["step"] == 5  # type: ignore[index]
    final = read_json(tmp_path / "second" / "final.json")
    assert final == {"step": 12, "digest": uninterrupted_digest}


def test_without_init_process_group_the_error_says_what_to_do(
    zygote: Zygote, tmp_path: Path
) -> None:
    assert zygote.run(1, _spec(tmp_path, scenario="no_init")) == [0]
    doc = read_json(tmp_path / "out" / "no_init.json")
    assert doc is not None and "call init_process_group on every rank" in doc["error"]
