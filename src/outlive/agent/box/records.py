"""The run directory's records: JSON read as data (never trusted), written atomically, durably."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time

from outlive import wire

from .common import AgentError, Rec

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Tuple

PROGRESS_TAIL_BYTES = 8192


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes, path: str) -> None:
    """Write every byte of ``data`` to ``fd`` and fsync it: a short write is retried, and a disk
    that takes no more (ENOSPC, EDQUOT, EIO...) is an AgentError naming ``path``, never a prefix
    left behind as if it were the whole."""
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        raise AgentError(
            f"could not write {path} ({exc.strerror or exc}; {len(data) - len(view)} of "
            f"{len(data)} bytes written); free space on that disk and retry",
            kind="write_failed",
        ) from None


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` durably: tmp, every byte, fsync, rename, fsync the directory (a rename is
    not durable until its directory entry is; U6). On any failure the tmp file is removed and
    ``path`` keeps what it had: never a truncated file under the real name."""
    directory = os.path.dirname(path) or "."
    # Unique per writer (two threads of one agent never share one), created, never reopened.
    token = os.urandom(4).hex()
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{token}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise AgentError(
            f"could not create {tmp} ({exc.strerror or exc}); check that disk and its permissions",
            kind="write_failed",
        ) from None
    try:
        try:
            write_all(fd, data, path)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise AgentError(_not_replaced(path, exc), kind="write_failed") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def _not_replaced(path: str, exc: OSError) -> str:
    """Why a written record could not take its name, and what to do about it."""
    if os.path.isdir(path) and not os.path.islink(path):
        return f"could not write {path}: a directory is in the way there; move it aside and retry"
    return (
        f"could not write {path} ({exc.strerror or exc}); check what is at that path (another "
        "user's file in a shared directory cannot be replaced) and retry"
    )


def write_json_atomic(path: str, data: object, mode: int = 0o644) -> None:
    """Write JSON durably and whole (see ``write_bytes_atomic``)."""
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def read_json(path: str) -> object:
    """The JSON at ``path``; None when absent, ``{"_unreadable": path}`` when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"_unreadable": path}


# exit.json's fields and the types its readers compute with; None (or absent) is always allowed.
_EXIT_FIELDS = {
    "exit_code": (int,),
    "signal": (int,),
    "signal_name": (str,),
    "max_rss_bytes": (int,),
    "ended_at": (int, float),
    "oom_kill_after": (int,),
    "forwarded_signals": (list,),
    "error": (str,),
}


def exit_problem(rec: object) -> str | None:
    """Why ``rec`` (exit.json as read) is not an exit record the supervisor wrote, or None."""
    if not isinstance(rec, dict):
        return "it is not a JSON object"
    for key, types in _EXIT_FIELDS.items():
        value = rec.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types) or value != value:
            return f"its {key} is {value!r}"
        if isinstance(value, float) and abs(value) == float("inf"):
            return f"its {key} is {value!r}"
    if rec.get("exit_code") is None and rec.get("signal") is None:
        return "it holds neither an exit code nor a signal"
    return None


def read_exit(path: str) -> object:
    """exit.json as :func:`read_json` reads it, except that a damaged one (a field of the wrong
    type, neither an exit code nor a signal) is unreadable too: ``{"_unreadable": path,
    "damaged": why}``. No reader ever computes with what a hand edit or a broken disk left."""
    rec = read_json(path)
    if rec is None or (isinstance(rec, dict) and "_unreadable" in rec):
        return rec
    problem = exit_problem(rec)
    return rec if problem is None else {"_unreadable": path, "damaged": problem}


def exit_record(path: str) -> Rec | None:
    """A whole, well-formed exit record at ``path``, else None (absent, unreadable, damaged)."""
    rec = read_exit(path)
    return rec if isinstance(rec, dict) and "_unreadable" not in rec else None


def unreadable_exit(rec: object, path: str) -> str:
    """The sentence for an exit record :func:`read_exit` found unreadable or damaged."""
    damaged = rec.get("damaged") if isinstance(rec, dict) else None
    if damaged:
        return f"the exit record {path} is damaged ({damaged}); its run's end is unknown"
    return f"the exit record {path} is unreadable"


def read_record(path: str) -> Rec | None:
    """A readable JSON object at ``path``, else None (absent, unreadable or not an object)."""
    rec = read_json(path)
    return rec if isinstance(rec, dict) and "_unreadable" not in rec else None


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_spec(run_dir: str) -> Rec | None:
    """The run's ``run.json`` (written once at launch), or None when it is missing or unreadable."""
    return read_record(os.path.join(run_dir, wire.RUN_JSON))


def request_cancel(run_dir: str, grace_s: float) -> None:
    """Record that the user asked to stop the run (first request wins): the supervisor and the
    Slurm batch shell read it, and the probe reports the run cancelled, whatever its exit code."""
    path = os.path.join(run_dir, wire.CANCEL_JSON)
    if not os.path.exists(path):
        write_json_atomic(path, {"requested_at": time.time(), "grace_s": grace_s})


def read_progress(run_dir: str, now: float) -> Tuple[Rec | None, float | None]:
    """The job's last ``progress()`` record and the heartbeat's age (the file's mtime)."""
    path = os.path.join(run_dir, wire.PROGRESS_JSONL)
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            f.seek(max(0, st.st_size - PROGRESS_TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None, None
    for line in reversed(tail.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written right now, or cut by the tail window
        if isinstance(record, dict):
            return record, max(0.0, now - st.st_mtime)
    return None, max(0.0, now - st.st_mtime)
