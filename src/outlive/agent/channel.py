"""Persistent agent channels: one agent ``serve`` process per target, held open by a resident
process (the local daemon, ``watch``), so a look (or the daemon's launch) is one request line on
an open channel.

A one-shot agent call pays, every time: a new SSH session on the master, the remote login shell
(which on many images runs ``conda init`` or ``pyenv init``), and a Python start-up. On an open
channel a look pays only the agent's own work and one round trip. Channels carry only the
read-only verbs (``probe``, ``tail``), so a request repeated after a dropped channel is harmless.

Failure semantics match the one-shot path: no answer within the look's timeout is
``Unreachable`` (never a dead run), and a dropped channel is reopened once per request.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from outlive import wire
from outlive.errors import TransportError, Unreachable

SERVE_VERBS = frozenset(wire.SERVE_VERBS)
REPEATABLE = frozenset(wire.READ_ONLY_SERVE_VERBS)
_STDERR_KEEP_BYTES = 16 * 1024


class ChannelClosed(TransportError):
    """The channel's process ended (link drop, master exit, box reboot); reopen and retry."""


class AgentChannel:
    """One ``serve`` process and its pipes; requests are answered strictly in order."""

    def __init__(self, argv: Sequence[str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in a foreground client must not reach it
        )
        self._buf = bytearray()  # read and not yet returned (grown in place: a long reply)
        self._stderr: collections.deque[bytes] = collections.deque()
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self.hello: dict[str, object] | None = None

    def _drain_stderr(self) -> None:
        """Keep the last words on stderr (for the error message) without letting the pipe fill.
        This thread alone closes the pipe, at EOF, so its descriptor is never read after reuse."""
        stream = self.proc.stderr
        assert stream is not None
        kept = 0
        with stream:
            for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
                self._stderr.append(chunk)
                kept += len(chunk)
                while kept > _STDERR_KEEP_BYTES and len(self._stderr) > 1:
                    kept -= len(self._stderr.popleft())

    def stderr(self) -> bytes:
        """What the process wrote to stderr lately (after it ended: all of its last words)."""
        if self.proc.poll() is not None:
            self._drain.join(timeout=1.0)
        return b"".join(self._stderr)

    def start(self, timeout_s: float) -> bool:
        """Wait for the agent's greeting; False if the process ended first (see ``returncode``)."""
        try:
            line = self._read_line(time.monotonic() + timeout_s, timeout_s)
        except ChannelClosed:
            self.proc.wait()
            return False
        hello = _parse(line)
        if not hello.get("serve"):
            self.close()
            raise TransportError(f"{self.name}: the agent did not start its serve loop ({line!r})")
        self.hello = hello
        return True

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def request(self, verb: str, request: dict[str, object], timeout_s: float) -> dict[str, object]:
        """Send one request and return the agent's reply object."""
        assert self.proc.stdin is not None
        line = json.dumps({"verb": verb, "request": request}).encode() + b"\n"
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise ChannelClosed(f"{self.name}: the agent channel is closed") from None
        deadline = time.monotonic() + timeout_s
        doc = _parse(self._read_line(deadline, timeout_s))
        size = raw_size(doc)
        if size is None:
            return doc
        return with_raw(doc, self._read_exactly(size, deadline, timeout_s))

    def _read_line(self, deadline: float, timeout_s: float) -> bytes:
        scanned = 0  # a long line arrives in many reads: look for its end in each once
        while (cut := self._buf.find(b"\n", scanned)) < 0:
            scanned = len(self._buf)
            self._buf += self._read(1 << 16, deadline, timeout_s)
        line = bytes(self._buf[:cut])
        del self._buf[: cut + 1]
        return line

    def _read_exactly(self, size: int, deadline: float, timeout_s: float) -> bytes:
        """The ``size`` bytes that follow a reply's header (``raw``)."""
        parts, got = [bytes(self._buf[:size])], min(size, len(self._buf))
        del self._buf[:size]
        while got < size:
            parts.append(self._read(min(size - got, 1 << 20), deadline, timeout_s))
            got += len(parts[-1])
        return b"".join(parts)

    def _read(self, most: int, deadline: float, timeout_s: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        left_s = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, left_s))[0] if left_s > 0 else []
        if not ready:
            self.close(linger_s=0.0)  # a hung link carries no EOF: end it now
            raise no_answer(self.name, timeout_s)
        chunk = os.read(fd, most)
        if not chunk:
            raise ChannelClosed(f"{self.name}: the agent channel closed")
        return chunk

    def close(self, linger_s: float = 0.5) -> None:
        """End the channel: EOF first (the agent exits on it), then a kill if it lingers."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=linger_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def no_answer(name: str, timeout_s: float) -> Unreachable:
    """What a look says of an agent that did not answer in time (a channel's or a one-shot's)."""
    return Unreachable(
        f"{name}: no answer within {timeout_s:.0f} s; check the link "
        "(the run itself is not known to have stopped)"
    )


def raw_size(reply: dict[str, object]) -> int | None:
    """How many bytes follow this reply's header (a ``tail`` asked with ``raw``), or None."""
    size = reply.get("raw")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise TransportError(f"the agent answered a header with a bad byte count: {size!r}")
    return size


def with_raw(reply: dict[str, object], data: bytes) -> dict[str, object]:
    """The reply with the bytes that followed its header as its result's ``data``."""
    result = reply.get("result")
    if isinstance(result, dict):
        result["data"] = data
    return reply


def _parse(line: bytes) -> dict[str, object]:
    try:
        doc = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise TransportError(f"the agent answered something that is not a reply: {line[:200]!r}")
    return doc


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.channel: AgentChannel | None = None


class ChannelPool:
    """Open channels by key (one per target connection); thread-safe, one request per channel
    at a time. ``opener`` starts a channel for a key the first time and after a drop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, ...], _Slot] = {}

    def call(
        self,
        key: tuple[str, ...],
        opener: Callable[[float], AgentChannel],
        verb: str,
        request: dict[str, object],
        timeout_s: float,
    ) -> dict[str, object]:
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            while True:
                if slot.channel is not None and slot.channel.returncode is not None:
                    slot.channel.close()  # ended since its last use: reopen before sending
                    slot.channel = None
                reused = slot.channel is not None
                if slot.channel is None:
                    slot.channel = opener(timeout_s)
                try:
                    return slot.channel.request(verb, request, timeout_s)
                except TransportError as exc:
                    slot.channel.close()
                    slot.channel = None
                    # A kept channel that ended since its last use is reopened once; a fresh
                    # one that fails, or any other failure, is the look's answer.
                    if not (reused and isinstance(exc, ChannelClosed) and verb in REPEATABLE):
                        raise

    def close(self) -> None:
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            with slot.lock:
                if slot.channel is not None:
                    slot.channel.close()
                    slot.channel = None

    def __len__(self) -> int:
        return sum(1 for s in self._slots.values() if s.channel is not None)
