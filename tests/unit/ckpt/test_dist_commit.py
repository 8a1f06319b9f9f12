"""The commit-marker protocol of sharded checkpoints (stdlib only): what counts as committed,
what a torn or tampered step looks like, and what retention may delete."""

from __future__ import annotations

import json
from pathlib import Path

from outlive.ckpt.integrations import dist_commit as dc


def _step(root: Path, step: int, *, commit: bool = True, payload: bytes = b"x" * 100) -> Path:
    """A step directory shaped like DCP's: two shard files and .metadata; marker if committed."""
    d = root / dc.step_dir_name(step)
    d.mkdir(parents=True)
    names = ["__0_0.distcp", "__1_0.distcp", ".metadata"]
    for name in names:
        (d / name).write_bytes(payload + name.encode())
    if commit:
        files = dc.describe(d, names)
        dc.write_marker(d, step, files, world_size=2)
    return d


def test_a_step_is_committed_only_with_a_marker_that_matches_its_files(tmp_path: Path) -> None:
    _step(tmp_path, 10)
    _step(tmp_path, 20, commit=False)  # a save cut before its marker
    assert dc.committed_steps(tmp_path) == [10]
    assert dc.marker_holds(tmp_path / dc.step_dir_name(10), checksums=True)
    assert not dc.marker_holds(tmp_path / dc.step_dir_name(20))
    marker = json.loads((tmp_path / dc.step_dir_name(10) / dc.MARKER_NAME).read_text())
    assert marker["format"] == dc.MARKER_FORMAT and marker["world_size"] == 2
    assert set(marker["files"]) == {"__0_0.distcp", "__1_0.distcp", ".metadata"}


def test_a_truncated_or_flipped_shard_breaks_the_marker(tmp_path: Path) -> None:
    d = _step(tmp_path, 5)
    shard = d / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[3] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert dc.marker_holds(d)  # same size: only the checksum sees it
    assert not dc.marker_holds(d, checksums=True)
    shard.write_bytes(bytes(data[:-1]))
    assert not dc.marker_holds(d)
    (d / "__0_0.distcp").unlink()
    assert not dc.marker_holds(d)


def test_a_marker_naming_another_step_or_garbage_is_not_a_commit(tmp_path: Path) -> None:
    d = _step(tmp_path, 7)
    doc = json.loads((d / dc.MARKER_NAME).read_text())
    (d / dc.MARKER_NAME).write_text(json.dumps(dict(doc, step=8)))
    assert dc.read_marker(d) is None
    (d / dc.MARKER_NAME).write_text("{torn")
    assert dc.committed_steps(tmp_path) == []


def test_prune_keeps_the_newest_committed_and_anything_newer(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        _step(tmp_path, step)
    _step(tmp_path, 0, commit=False)  # a torn leftover, older: removed
    _step(tmp_path, 4, commit=False)  # newer than the newest commit (in flight): kept
    assert dc.prune(tmp_path, keep_last=1, just_committed=3) == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        dc.step_dir_name(3),
        dc.step_dir_name(4),
    ]


def test_prune_after_resuming_from_an_older_step_keeps_the_newest_committed(
    tmp_path: Path,
) -> None:
    for step in (5, 7, 10):
        _step(tmp_path, step)
    assert dc.prune(tmp_path, keep_last=1, just_committed=7) == [5]
    assert dc.committed_steps(tmp_path) == [7, 10]
    assert dc.prune(tmp_path, keep_last=None, just_committed=7) == []


def test_removing_a_step_dir_takes_its_marker_first(tmp_path: Path) -> None:
    d = _step(tmp_path, 3)
    dc.remove_step_dir(d)
    assert not d.exists() and dc.committed_steps(tmp_path) == []
    dc.remove_step_dir(d)  # already gone: nothing to do
