"""Fixtures for the checkpoint integrations: child interpreters that import this checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import outlive
from outlive.testing.dist_ckpt import Zygote

SRC_DIR = str(Path(outlive.__file__).resolve().parents[1])


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("OUTLIVE_PROGRESS_FILE", "OUTLIVE_CKPT_DIR", "OUTLIVE_SMOKE", "OUTLIVE_MTBF_S"):
        env.pop(name, None)
    env.pop("OUTLIVE_SPOT_GRACE_S", None)
    env["HF_HUB_OFFLINE"] = "1"  # never reach for the hub: every model here is built from a config
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def child_env() -> Callable[..., dict[str, str]]:
    """``child_env(NAME=value, ...)``: an environment for a child that imports this outlive."""
    return _child_env


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """One process with torch imported that forks the ranks of each torch.distributed group."""
    with Zygote() as z:
        yield z
