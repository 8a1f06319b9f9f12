"""Sealing Trainer checkpoint directories: a torn checkpoint-N is never the one resumed from."""

from __future__ import annotations

import json
import os
from pathlib import Path

from outlive.ckpt.integrations.hf import SEAL_NAME, last_sealed_checkpoint, seal_checkpoint


def _trainer_checkpoint(root: Path, step: int, size: int = 1000) -> Path:
    folder = root / f"checkpoint-{step}"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(size))
    (folder / "sub" / "optimizer.pt").write_bytes(os.urandom(size // 2))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_seal_lists_every_file_with_its_size(tmp_path: Path) -> None:
    folder = _trainer_checkpoint(tmp_path, 10)
    seal = seal_checkpoint(folder, hash_files=True)
    files = json.loads(seal.read_text())["files"]
    assert sorted(files) == ["model.safetensors", "sub/optimizer.pt", "trainer_state.json"]
    assert (
        files["model.safetensors"]["size"] == 1000
        and len(files["sub/optimizer.pt"]["sha256"]) == 64
    )
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_the_newest_sealed_checkpoint_wins_over_a_torn_newer_one(tmp_path: Path) -> None:
    for step in (5, 10):
        seal_checkpoint(_trainer_checkpoint(tmp_path, step))
    _trainer_checkpoint(tmp_path, 15)  # killed while the Trainer wrote it: no seal
    assert last_sealed_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")

    # A sealed file that was truncated afterwards (disk full on a later write) is not trusted.
    (tmp_path / "checkpoint-10" / "model.safetensors").write_bytes(b"short")
    assert last_sealed_checkpoint(tmp_path) == str(tmp_path / "checkpoint-5")


def test_hash_verification_catches_same_size_corruption(tmp_path: Path) -> None:
    folder = _trainer_checkpoint(tmp_path, 3)
    seal_checkpoint(folder, hash_files=True)
    (folder / "model.safetensors").write_bytes(os.urandom(1000))
    assert last_sealed_checkpoint(tmp_path) == str(folder)  # sizes alone still match
    assert last_sealed_checkpoint(tmp_path, verify_hashes=True) is None


def test_no_output_dir_or_no_checkpoints_means_a_fresh_start(tmp_path: Path) -> None:
    assert last_sealed_checkpoint(tmp_path / "missing") is None
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "runs").mkdir()
    assert last_sealed_checkpoint(tmp_path) is None
    assert SEAL_NAME == "outlive-sealed.json"
