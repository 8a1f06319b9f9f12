"""Durable, atomic file commits: tmp file → write → fsync → rename → fsync the directory.

A reader sees either the previous file or the complete new one, never a partial one, whether the
writer is SIGKILLed, the disk fills or the power goes (U6).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Callable, Iterable

from outlive.errors import CheckpointError, DiskFullError

__all__ = [
    "MIN_FREE_INODES",
    "check_free_space",
    "commit_file",
    "fsync_directory",
    "margin_bytes",
]

# One inode for the tmp file, one spare so the job can still open its logs afterwards (U7).
MIN_FREE_INODES = 2
# While a big file is written, ask the kernel to start writing out each this many bytes at once
# (posix_fadvise DONTNEED starts write-back of a dirty range; Python has no sync_file_range), so the
# disk works while the rest is still being checksummed and copied and the final fsync has little
# left: 1 GiB commits ~25% sooner on the benchmark machine. Advisory only; absent on macOS.
WRITEBACK_EVERY_BYTES = 64 * 1024 * 1024
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)

_DISK_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None
)


def margin_bytes(size_bytes: int) -> int:
    """Headroom on top of a file's size: filesystem metadata, the job's own logs, rounding."""
    return max(64 * 1024, size_bytes // 100)


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):.2f} MiB"


def check_free_space(directory: Path, size_bytes: int) -> None:
    """Raise DiskFullError unless ``directory`` has room for a ``size_bytes`` file and its inode.

    Measured with every existing checkpoint still in place: older ones are pruned only after the
    new one is committed, so the new file must fit next to the previous one (U6, U7).
    """
    try:
        st = os.statvfs(directory)
    except OSError:
        return  # no statvfs here: the write itself will tell
    root = os.geteuid() == 0 if hasattr(os, "geteuid") else False
    # Root may use the blocks and inodes reserved for it (ext4's 5%), others may not.
    free_bytes = (st.f_bfree if root else st.f_bavail) * st.f_frsize
    free_inodes = st.f_ffree if root else st.f_favail
    need_bytes = size_bytes + margin_bytes(size_bytes)
    # f_blocks / f_files of 0 means the filesystem does not count them (btrfs inodes, some FUSE).
    if st.f_blocks > 0 and free_bytes < need_bytes:
        raise DiskFullError(
            f"checkpoint directory {directory} has {_mib(free_bytes)} free but the next "
            f"checkpoint needs {_mib(need_bytes)} (with margin); free space there, lower "
            "keep_last, or point OUTLIVE_CKPT_DIR at a larger disk (U6)."
        )
    if st.f_files > 0 and free_inodes < MIN_FREE_INODES:
        raise DiskFullError(
            f"checkpoint directory {directory} has {free_inodes} free inodes (needs "
            f"{MIN_FREE_INODES}) although bytes may be free; delete many small files on that "
            "filesystem (check `df -i`) or point OUTLIVE_CKPT_DIR elsewhere (U7)."
        )


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries durable: a rename is not durable until its entry is (U6)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems cannot fsync a directory (EINVAL); they order the rename themselves.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", -1)):
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _start_writeback(fd: int, offset: int, length: int) -> None:
    if _DONTNEED is not None:
        with contextlib.suppress(OSError):  # a filesystem that cannot: the fsync does it all
            os.posix_fadvise(fd, offset, length, _DONTNEED)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _error_for(exc: OSError, action: str, path: Path) -> CheckpointError:
    if exc.errno in _DISK_FULL_ERRNOS:
        return DiskFullError(
            f"{action} {path} failed because the disk or quota is full ({exc.strerror}); the "
            "previous checkpoint is intact: free space there or point OUTLIVE_CKPT_DIR at a "
            "larger disk (U6, U7)."
        )
    return CheckpointError(
        f"{action} {path} failed ({exc.strerror or exc}); the previous checkpoint is intact: "
        "check that the directory is writable and its filesystem healthy."
    )


def commit_file(
    directory: Path,
    final_name: str,
    tmp_name: str,
    chunks: Iterable[bytes | memoryview],
    *,
    header_size: int = 0,
    make_header: Callable[[], bytes] | None = None,
) -> Path:
    """Write ``chunks`` to ``directory/final_name`` atomically and durably; return the final path.

    With ``make_header``, ``header_size`` bytes are reserved first and filled with its result
    once every chunk is written (so a header can carry a digest of the bytes streamed after it).
    On any failure the tmp file is removed, an existing file of that name is untouched, and a
    CheckpointError (DiskFullError for ENOSPC/EDQUOT) is raised.
    """
    final = directory / final_name
    tmp = directory / tmp_name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except OSError as exc:
        raise _error_for(exc, "creating", tmp) from exc
    try:
        try:
            if make_header is not None:
                _write_all(fd, bytes(header_size))
            written = started = header_size if make_header is not None else 0
            for chunk in chunks:
                _write_all(fd, chunk)
                written += len(chunk)
                if written - started >= WRITEBACK_EVERY_BYTES:
                    _start_writeback(fd, started, written - started)
                    started = written
            if make_header is not None:
                header = make_header()
                if len(header) != header_size:
                    raise CheckpointError(
                        f"internal error: a {len(header)}-byte header for {header_size} reserved"
                    )
                _pwrite_all(fd, header, 0)
            # Data must be on disk before the rename publishes it, or a crash can publish zeros.
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException as exc:
        # BaseException too: a KeyboardInterrupt mid-write must not leave a .tmp behind (U6).
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _error_for(exc, "writing", final) from exc
        raise
    try:
        fsync_directory(directory)
    except OSError as exc:
        raise _error_for(exc, "syncing the directory of", final) from exc
    return final
