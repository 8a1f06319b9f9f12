"""Calls the box-side agent over a transport: one JSON request in, one JSON reply out."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from outlive import wire
from outlive.agent import bundle, channel
from outlive.errors import BoxError, TransportError, Unreachable
from outlive.transport.base import Completed, Transport

DEFAULT_TIMEOUT_S = 60.0
MISSING = wire.MISSING_BUNDLE_EXIT  # the box has no copy of this bundle yet

# Constant scripts: data (python, hash, verb) arrives as positional parameters, never spliced in.
# The agent is imported, not run as a script, so its bytecode is cached in the bundle dir
# (a script is recompiled on every call); -S skips site-packages, which it never needs.
BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from box.main import main; "
    "sys.exit(main(sys.argv))"
)
# The local target's agent: its paths are taken literally (box.common.LITERAL_PATHS), never
# $VAR-expanded, since they name this machine's own directories (a project in ``/tmp/a$HOME``).
BOOT_LITERAL = BOOT.replace(
    "from box.main import main;",
    "import box.common; box.common.LITERAL_PATHS = True; from box.main import main;",
)
_RUN = (
    f'd="$HOME/.cache/outlive/$2"; [ -f "$d/box/main.py" ] || exit {MISSING}; '
    'exec "$1" -S -c "$4" "$d" "$3"'
)
_INSTALL = (
    'set -e; d="$HOME/.cache/outlive/$1"; [ -f "$d/box/main.py" ] && exit 0; '
    'mkdir -p "$d.tmp.$$"; tar -xzf - -C "$d.tmp.$$"; '
    'mv "$d.tmp.$$" "$d" 2>/dev/null || rm -rf "$d.tmp.$$"'
)


class AgentClient:
    """One agent on one target. ``local`` runs the bundle from the project's ``.outlive/lib``;
    ``remote`` runs it from ``~/.cache/outlive/<hash>`` on the box, uploading it on first use."""

    def __init__(
        self,
        transport: Transport,
        *,
        local_dir: Path | None = None,
        python: str = "python3",
        pool: channel.ChannelPool | None = None,
        bundle_path: str | None = None,
        literal_paths: bool = False,
    ) -> None:
        self.transport = transport
        self.local_dir = local_dir
        self.python = python
        self.pool = pool  # read-only verbs go over its persistent channels when set
        # The agent's zipapp already on the target (a Kubernetes pod's ConfigMap): run from
        # there, nothing to install.
        self.bundle_path = bundle_path
        self.boot = BOOT_LITERAL if literal_paths else BOOT

    @classmethod
    def local(
        cls,
        state_dir: Path,
        *,
        pool: channel.ChannelPool | None = None,
        name: str = "local",
        literal_paths: bool = False,
    ) -> AgentClient:
        """The agent on this machine, for target ``name`` (errors name that target); with
        ``literal_paths`` (the embedded local target) its paths are never $VAR-expanded."""
        from outlive.transport.local import LocalTransport

        lib = bundle.materialize(state_dir / "lib")
        return cls(LocalTransport(name), local_dir=lib, pool=pool, literal_paths=literal_paths)

    @classmethod
    def remote(
        cls,
        transport: Transport,
        python: str = "python3",
        *,
        pool: channel.ChannelPool | None = None,
    ) -> AgentClient:
        return cls(transport, python=python, pool=pool)

    def call(
        self, verb: str, request: Mapping[str, object], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Any:
        if self.pool is not None and verb in channel.SERVE_VERBS:
            key = self.channel_key()
            return self._unwrap(
                verb, self.pool.call(key, self.open_channel, verb, dict(request), timeout_s)
            )
        payload = json.dumps(request).encode()
        done = self._invoke(verb, payload, timeout_s)
        if self.local_dir is None and self.bundle_path is None and done.returncode == MISSING:
            self.install(timeout_s)
            done = self._invoke(verb, payload, timeout_s)
        return self._reply(verb, done)

    def call_streamed(
        self, verb: str, request: Mapping[str, object], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> tuple[dict[str, Any], Iterator[bytes]]:
        """``verb`` asked with ``raw``, its bytes read as they come: the result (less the bytes)
        once the agent's header has come, and the bytes that follow it, in pieces, within the
        same ``timeout_s``. An agent that predates ``raw`` sends none (its result holds them),
        and so does a kept channel's reply (whole); whatever stops a streamed call before its
        header (a box without the bundle, a stale ssh master) is left to :meth:`call`."""
        request = dict(request, raw=True)
        if self.pool is None:
            streamed = self._streamed(verb, request, time.monotonic() + timeout_s, timeout_s)
            if streamed is not None:
                return streamed
        result = dict(self.call(verb, request, timeout_s=timeout_s))
        data = result.pop("data", None)
        return result, iter((data,) if isinstance(data, bytes) else ())

    def _streamed(
        self, verb: str, request: dict[str, object], deadline: float, timeout_s: float
    ) -> tuple[dict[str, Any], Iterator[bytes]] | None:
        argv = self.transport.command_argv(self._agent_argv(verb))
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # a failure is the plain call's, which reads it
                start_new_session=True,  # a Ctrl-C here must not reach an ssh master
            )
        except OSError:
            return None
        reader = _Pipe(proc, deadline, self.transport.name, timeout_s)
        try:
            assert proc.stdin is not None
            with proc.stdin:
                proc.stdin.write(json.dumps(request).encode())
            head, complete = reader.line()
            if complete:  # one JSON document (no bytes after it), or nothing
                if reader.finish() != 0 or not head.strip():
                    return None
                return self._reply(verb, Completed(tuple(argv), 0, head, b"")), iter(())
            reply = channel._parse(head)
            size = channel.raw_size(reply)
        except Unreachable:
            reader.finish(kill=True)
            raise  # no answer within the whole timeout: asking again would wait as long
        except (OSError, TransportError):
            reader.finish(kill=True)
            return None
        if size is None or not reply.get("ok"):
            reader.finish(kill=True)
            return None  # not a reply this call reads: the plain call tells what it is
        return self._unwrap(verb, reply), reader.exactly(size)

    def _agent_argv(self, verb: str) -> list[str]:
        if self.local_dir is not None:
            return [sys.executable, "-S", "-c", self.boot, str(self.local_dir), verb]
        if self.bundle_path is not None:
            return [self.python, "-S", "-c", self.boot, self.bundle_path, verb]
        return ["sh", "-c", _RUN, "sh", self.python, bundle.bundle_hash(), verb, BOOT]

    def _invoke(self, verb: str, payload: bytes, timeout_s: float) -> Completed:
        return self.transport.run(self._agent_argv(verb), stdin=payload, timeout_s=timeout_s)

    def channel_key(self) -> tuple[str, ...]:
        """What identifies this agent's channel: the exact command that opens it."""
        return tuple(self.transport.command_argv(self._agent_argv("serve")))

    def open_channel(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> channel.AgentChannel:
        """Start ``serve`` on the target (installing the bundle, or replacing a dead master,
        once each if needed) and return the open channel."""
        installed = recovered = False
        while True:
            ch = channel.AgentChannel(self.channel_key(), self.transport.name)
            if ch.start(timeout_s):
                return ch
            code, err = ch.returncode, ch.stderr()
            ch.close()
            if code == MISSING and self.local_dir is None and not installed:
                self.install(timeout_s)
                installed = True
            elif not recovered and self.transport.recover(code or 0, err):
                recovered = True
            else:
                failed = self.transport.failure(code or 0, err)
                if failed is not None:
                    raise failed
                raise self._no_answer("serve", code, err)

    def install(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Upload the bundle over the existing connection (one round trip)."""
        done = self.transport.run(
            ["sh", "-c", _INSTALL, "sh", bundle.bundle_hash()],
            stdin=bundle.tarball(),
            timeout_s=timeout_s,
        )
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", errors="replace").strip()
            raise TransportError(
                f"could not install outlive's agent on {self.transport.name} "
                f"({err or done.returncode}); check that $HOME is writable and tar exists there"
            )

    def _no_answer(self, verb: str, code: int | None, stderr: bytes) -> TransportError:
        err = stderr.decode("utf-8", errors="replace").strip().splitlines()
        return TransportError(
            f"the agent on {self.transport.name} gave no answer to {verb!r} "
            f"(exit {code}: {err[-1] if err else 'no output'}); "
            f"check that {self.python} (>= 3.8) runs there"
        )

    def _reply(self, verb: str, done: Completed) -> Any:
        # one JSON document, or a JSON header line and the bytes it counts (channel.raw_size)
        head, _, rest = done.stdout.partition(b"\n")
        try:
            reply = json.loads(head.decode("utf-8", errors="replace") or "null")
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise self._no_answer(verb, done.returncode, done.stderr)
        size = channel.raw_size(reply)
        if size is not None:
            if len(rest) != size:
                raise self._no_answer(verb, done.returncode, done.stderr)
            reply = channel.with_raw(reply, rest)
        return self._unwrap(verb, reply)

    def _unwrap(self, verb: str, reply: dict[str, object]) -> Any:
        if not reply.get("ok"):
            raise BoxError(
                f"{self.transport.name}: {reply.get('error', 'unknown agent error')}",
                kind=str(reply.get("kind", "error")),
            )
        return reply.get("result")


class _Pipe:
    """A one-shot agent's stdout read as it comes, within a deadline."""

    def __init__(
        self, proc: subprocess.Popen[bytes], deadline: float, name: str, timeout_s: float
    ) -> None:
        self.proc, self.deadline, self.name, self.timeout_s = proc, deadline, name, timeout_s
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = bytearray()

    def _read(self, most: int) -> bytes:
        left_s = self.deadline - time.monotonic()
        if left_s <= 0 or not select.select([self.fd], [], [], left_s)[0]:
            raise channel.no_answer(self.name, self.timeout_s)
        return os.read(self.fd, most)

    def line(self) -> tuple[bytes, bool]:
        """The first line (without its newline), or, at EOF before one, all that came (True)."""
        scanned = 0
        while (cut := self.buf.find(b"\n", scanned)) < 0:
            scanned = len(self.buf)
            chunk = self._read(1 << 16)
            if not chunk:
                return bytes(self.buf), True
            self.buf += chunk
        line = bytes(self.buf[:cut])
        del self.buf[: cut + 1]
        return line, False

    def exactly(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes, in the pieces they come in; the process is ended after."""
        got = min(size, len(self.buf))
        try:
            if got:
                yield bytes(self.buf[:got])
            while got < size:
                chunk = self._read(min(size - got, 1 << 20))
                if not chunk:
                    raise TransportError(f"{self.name}: the agent's reply ended early")
                got += len(chunk)
                yield chunk
        finally:
            self.finish(kill=got < size)  # all read: the agent is exiting on its own

    def finish(self, kill: bool = False) -> int:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code
