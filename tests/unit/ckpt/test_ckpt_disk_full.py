"""Disk full and inode exhaustion on a real tmpfs: a clear error and nothing lost (U6, U7)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from outlive import Checkpointer
from outlive.errors import DiskFullError

pytestmark = pytest.mark.root


def _assert_previous_intact(directory: Path) -> None:
    assert sorted(os.listdir(directory)) == ["step-000000000001.ckpt"], "a .tmp was left behind"
    restored = Checkpointer(directory, handle_signals=False).load_latest()
    assert restored is not None and restored.step == 1 and restored.state == b"small" * 100


def test_a_save_that_does_not_fit_raises_disk_full_and_keeps_the_previous_one(
    small_tmpfs: Path,
) -> None:
    ckpt = Checkpointer(small_tmpfs, handle_signals=False, keep_last=1)
    ckpt.save(b"small" * 100, step=1)

    with pytest.raises(DiskFullError) as caught:
        ckpt.save(os.urandom(2 * 1024 * 1024), step=2)

    message = str(caught.value)
    assert str(small_tmpfs) in message and "free" in message and "OUTLIVE_CKPT_DIR" in message
    assert "U6" in message
    _assert_previous_intact(small_tmpfs)


def test_a_save_that_nearly_fits_is_refused_before_writing(small_tmpfs: Path) -> None:
    ckpt = Checkpointer(small_tmpfs, handle_signals=False, keep_last=1)
    ckpt.save(b"small" * 100, step=1)
    st = os.statvfs(small_tmpfs)
    free_bytes = st.f_bfree * st.f_frsize

    with pytest.raises(DiskFullError):
        ckpt.save(b"z" * (free_bytes - 200), step=2)  # fits the bytes, not the margin
    _assert_previous_intact(small_tmpfs)


def test_inode_exhaustion_raises_disk_full_naming_inodes(small_tmpfs: Path) -> None:
    ckpt = Checkpointer(small_tmpfs / "ck", handle_signals=False)
    ckpt.save(b"small" * 100, step=1)
    ckpt.flush()  # committed before the filesystem runs out of inodes
    filler = small_tmpfs / "filler"
    filler.mkdir()
    count = 0
    with pytest.raises(OSError) as full:
        while True:
            (filler / str(count)).touch()
            count += 1
    assert full.value.errno == errno.ENOSPC and os.statvfs(small_tmpfs).f_bavail > 100

    with pytest.raises(DiskFullError, match="inodes") as caught:
        ckpt.save(b"tiny", step=2)
    assert "U7" in str(caught.value)
    _assert_previous_intact(small_tmpfs / "ck")


def _write_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the free-space check so that the kernel's own ENOSPC hits the background write."""
    import outlive.ckpt.core as core

    monkeypatch.setattr(core, "check_free_space", lambda directory, size_bytes: None)


def test_enospc_in_the_background_write_is_raised_next_and_leaves_no_tmp(
    small_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = Checkpointer(small_tmpfs, handle_signals=False, keep_last=1)
    ckpt.save(b"small" * 100, step=1)
    ckpt.flush()
    _write_only(monkeypatch)

    ckpt.save(os.urandom(2 * 1024 * 1024), step=2)  # the snapshot fits in memory, not on disk
    with pytest.raises(DiskFullError) as caught:
        ckpt.flush()

    message = str(caught.value)
    assert "disk or quota is full" in message and "previous checkpoint is intact" in message
    _assert_previous_intact(small_tmpfs)


def test_inode_exhaustion_in_the_background_write_is_raised_next(
    small_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = Checkpointer(small_tmpfs / "ck", handle_signals=False)
    ckpt.save(b"small" * 100, step=1)
    ckpt.flush()
    filler = small_tmpfs / "filler"
    filler.mkdir()
    with pytest.raises(OSError):
        for count in range(1000):
            (filler / str(count)).touch()
    _write_only(monkeypatch)

    ckpt.save(b"tiny", step=2)
    with pytest.raises(DiskFullError, match="creating"):
        ckpt.save(b"tiny", step=3)  # the next call raises the failed persist of step 2
    _assert_previous_intact(small_tmpfs / "ck")
