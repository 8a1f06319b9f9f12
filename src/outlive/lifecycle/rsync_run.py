"""One rsync run, read as it goes: its progress, its totals (``--stats``), why it failed, and
each file it has put in place (``--out-format``); a wall-clock limit ends it with TERM, which
keeps rsync's partial file for the next attempt."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from outlive.errors import TransportError

TERM_GRACE_S = 10.0  # rsync keeps its partial file when it ends on TERM
WALL_TIMEOUT_RC = -1  # our own per-attempt deadline (rsync was sent TERM)
_CONSEQUENCE_RE = re.compile(
    r"Broken pipe|connection unexpectedly closed|error in rsync protocol data stream"
)
STOPPED_RC = -2  # the pull was interrupted (rsync was sent TERM): never retried
STOPPED_ERROR = "stopped: the pull was interrupted"
STOP_LOOK_S = 0.2  # how often a running rsync looks whether the pull was interrupted
_PROGRESS_RE = re.compile(rb"^\s*([\d,.']+)\s+\d+%")
_RECEIVED_RE = re.compile(rb"Total bytes received: ([\d,.']+)")
_SENT_RE = re.compile(rb"Total bytes sent: ([\d,.']+)")
_SO_FAR_RE = re.compile(rb"\(([\d,.']+) bytes received so far\)")
# rsync names each file it received once its data is in (``%b`` makes it log after the data),
# just before it renames the file into place; the next line (or rsync's exit) means it is there.
LANDED_MARK = "outlive-landed"
_ESCAPE_RE = re.compile(rb"\\#([0-7]{3})")


@dataclass
class Attempt:
    """One rsync run; bytes come from its --stats, or from what it said as it failed."""

    rc: int
    seconds: float
    bytes_received: int | None
    bytes_sent: int | None
    bytes_from: str  # "stats" | "so-far" | "progress" | "none"
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rc": self.rc,
            "seconds": round(self.seconds, 3),
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "bytes_from": self.bytes_from,
            "error": self.error,
        }


def landed_name(rest: bytes) -> str | None:
    """The file name of one ``--out-format`` line (``<bytes> <name>``), rsync's ``\\#ooo``
    escapes undone; None for a directory."""
    _, _, raw = rest.partition(b" ")
    if not raw or raw.endswith(b"/"):
        return None
    return os.fsdecode(_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 8)]), raw))


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write ``data`` to ``proc``'s stdin and close it, on a thread: a long list must not
    wait on rsync while rsync waits on us to read its output."""
    stdin = proc.stdin
    if stdin is None:  # pragma: no cover - the early rsync is started with a stdin pipe
        return

    def write() -> None:
        with contextlib.suppress(OSError):  # rsync gone: its exit says why
            stdin.write(data)
        with contextlib.suppress(OSError):
            stdin.close()

    threading.Thread(target=write, name="rsync-list", daemon=True).start()


def _number(raw: bytes) -> int:
    return int(re.sub(rb"[^0-9]", b"", raw) or b"0")


def run_rsync(
    argv: list[str],
    attempt_timeout_s: float,
    on_bytes: Callable[[int], None],
    on_landed: Callable[[str], None] | None = None,
    *,
    started_proc: subprocess.Popen[bytes] | None = None,
    feed: bytes = b"",
    stop: threading.Event | None = None,
) -> Attempt:
    """Run one rsync, reading its progress as it goes; TERM it past ``attempt_timeout_s``.
    ``on_landed`` gets each received file's name (relative to the transfer) once it is at its
    final name here: when rsync names the next file. The last one is left to the caller.
    ``started_proc``: an rsync already started (``argv``, its stdin and stdout pipes), which
    gets ``feed`` on its stdin (its ``--files-from=-`` list) and is then read as any other.
    ``stop``: once set (the pull was interrupted), rsync is ended within STOP_LOOK_S, keeping
    its partial file, and the attempt says so (``stopped``)."""
    started = time.monotonic()
    env = dict(os.environ, LC_ALL="C")
    if started_proc is not None:
        proc = started_proc
        _feed(proc, feed)
    else:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except FileNotFoundError:
            raise TransportError(
                "rsync is not installed here; install it (apt install rsync)"
            ) from None
    if proc.stdout is None:  # pragma: no cover - Popen gives a pipe when asked for one
        raise TransportError("rsync started without an output pipe")
    out = proc.stdout
    fd = out.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf = b""
    received = sent = so_far = progress = None
    errors: list[str] = []
    timed_out = stopped = False
    mark = LANDED_MARK.encode() + b" "
    receiving: str | None = None  # named by rsync, maybe not yet renamed into place

    def parse(segment: bytes) -> None:
        nonlocal received, sent, so_far, progress, receiving
        if segment.startswith(mark):
            name = landed_name(segment[len(mark) :])
            if name is not None:
                if receiving is not None and on_landed is not None:
                    on_landed(receiving)
                receiving = name
        elif m := _PROGRESS_RE.match(segment):
            progress = _number(m.group(1))
            on_bytes(progress)
        elif m := _RECEIVED_RE.search(segment):
            received = _number(m.group(1))
        elif m := _SENT_RE.search(segment):
            sent = _number(m.group(1))
        else:
            if m := _SO_FAR_RE.search(segment):
                so_far = max(so_far or 0, _number(m.group(1)))
            text = segment.decode("utf-8", errors="replace").strip()
            low = text.lower()
            if text.startswith(("rsync:", "ssh:")) or "error" in low or "not found" in low:
                errors.append(text)

    try:
        deadline = started + attempt_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if stop is not None and stop.is_set():
                stopped = True
                break
            if not sel.select(timeout=min(1.0 if stop is None else STOP_LOOK_S, left)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *segments, buf = re.split(rb"[\r\n]", buf)
            for segment in segments:
                if segment.strip():
                    parse(segment)
        if buf.strip():
            parse(buf)
    finally:
        sel.close()
        if proc.poll() is None:
            proc.terminate()  # our own child: rsync keeps its partial file on TERM
            try:
                proc.wait(TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
        out.close()
    rc = WALL_TIMEOUT_RC if timed_out else proc.returncode
    if received is not None:
        bytes_from, got = "stats", received
    elif so_far is not None:
        bytes_from, got = "so-far", so_far
    elif progress is not None:
        bytes_from, got = "progress", progress
    else:
        bytes_from, got = "none", None
    error = None
    if stopped:
        rc, error = STOPPED_RC, STOPPED_ERROR
    elif timed_out:
        error = f"no end within {attempt_timeout_s:.0f} s"
    elif rc != 0:
        # The first specific line says why; rsync's own summary ("rsync error: ... (code N)")
        # says what kind of failure it was.
        # A broken pipe or a closed connection is what the other rsync process saw once this
        # one failed (the disk filled): the cause goes first, whichever line rsync wrote first.
        specific = sorted(
            (e for e in errors if not e.startswith("rsync error:")),
            key=lambda e: bool(_CONSEQUENCE_RE.search(e)),
        )
        summary = [e for e in errors if e.startswith("rsync error:")]
        parts = specific[:1] + summary[-1:]
        error = ("; ".join(parts) or f"rsync exit {rc}")[:400]
    return Attempt(rc, time.monotonic() - started, got, sent, bytes_from, error)
