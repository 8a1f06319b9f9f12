"""A pull's checks of its landed files (``lifecycle/landed``): every file hashed once the
transfer is over, and none once the pull stopped."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from outlive.lifecycle import landed
from outlive.lifecycle.landed import LandedChecks
from outlive.lifecycle.spare_cpu import SpareCpu


def never_spare() -> SpareCpu:
    return SpareCpu(look_s=0.01, ticks=lambda: 0, own_cpu_s=lambda: 0.0)  # no idle, ever


def tree(root: Path, n: int) -> dict[str, bytes]:
    files = {f"ckpt/d/f{i}.bin": os.urandom(1000 + i) for i in range(n)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_every_landed_file_is_hashed_once_the_transfer_is_over(tmp_path: Path) -> None:
    files = tree(tmp_path, 70)  # more than one batch
    with LandedChecks(tmp_path, workers=2, spare=never_spare()) as checks:
        batch = checks.batch()
        for rel, data in files.items():
            batch.add(rel, len(data))
        batch.flush()
        checks.transfer_over()  # the gate held every task until now
        seen = checks.results()
    assert set(seen) == set(files)
    for rel, data in files.items():
        assert seen[rel].sha256 == hashlib.sha256(data).hexdigest()


def test_a_stopped_pull_hashes_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tree(tmp_path, 200)
    observed: list[str] = []
    real = landed.V.observe_file

    def counted(root: Path, rel: str, *, expect_size: int | None = None) -> object:
        observed.append(rel)
        return real(root, rel, expect_size=expect_size)

    monkeypatch.setattr(landed.V, "observe_file", counted)
    with (
        pytest.raises(KeyboardInterrupt),
        LandedChecks(tmp_path, workers=2, spare=never_spare()) as checks,
    ):
        batch = checks.batch()
        for rel, data in files.items():
            batch.add(rel, len(data))
        batch.flush()
        raise KeyboardInterrupt  # Ctrl-C while the files still move
    assert checks.stop.is_set()
    assert observed == []  # held by the gate, then dropped: not one file was hashed
