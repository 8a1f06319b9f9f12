"""The process kubelet's ``/exec/{namespace}/{pod}/{container}``: what ``kubectl exec`` reaches
through the apiserver's upgrade-aware proxy.

The request carries ``command`` (repeated), ``input``/``output``/``error``/``tty`` and the
remotecommand protocols the client speaks (``X-Stream-Protocol-Version``); the answer is
``101 Switching Protocols`` to ``SPDY/3.1`` with the chosen protocol. The client then opens one
stream per channel (header ``streamType``: error, stdin, stdout, stderr, resize), each answered
with a SYN_REPLY. The command runs inside the container's mount namespace (``nsenter -m``) with the
container's environment and working directory; stdout and stderr go out as DATA frames, stdin comes
in as DATA frames, and at the end the error stream carries the result: for v4 a JSON
``metav1.Status`` (Success, or Failure/NonZeroExitCode with the exit code as an ``ExitCode``
cause), for older protocols a text message on failure only. A TTY is not played.

All socket I/O happens on the request's thread with a non-blocking socket and ``select``: an
``ssl`` socket must not be read and written from two threads at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import IO

from outlive.testing._spdy import GOAWAY, PING, RST_STREAM, SYN_STREAM, Framer

__all__ = ["PROTOCOLS", "ExecTarget", "plain_response", "serve_exec"]

PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STREAMS_TIMEOUT_S = 30.0  # as the kubelet waits for the client's streams
LINGER_S = 10.0  # after the result: how long to wait for the client to hang up
CHUNK = 32 * 1024
MAX_PENDING_OUT = 1 << 20  # bytes queued for the socket before the pumps are made to wait


@dataclass
class ExecTarget:
    """Where a command runs: the container's main process (its mount namespace), environment,
    working directory, and a hook that lets the container kill the command with itself."""

    pid: int
    env: dict[str, str]
    workdir: str
    adopt: Callable[[subprocess.Popen[bytes]], None]


def serve_exec(
    handler: BaseHTTPRequestHandler, target: ExecTarget, query: dict[str, list[str]]
) -> None:
    """Answer one exec request on HANDLER's connection (the handler must close it after)."""
    offered = [p.strip() for v in handler.headers.get_all("X-Stream-Protocol-Version") or []
               for p in v.split(",")]  # fmt: skip
    protocol = next((p for p in PROTOCOLS if p in offered), "")
    if offered and not protocol:
        plain_response(handler, 403, f"none of the protocols {offered} is supported")
        return
    command = query.get("command") or []
    flag = {
        k: (query.get(k) or [""])[-1] in ("1", "true") for k in ("input", "output", "error", "tty")
    }
    if not command:
        plain_response(handler, 400, "you must specify at least one command for the container")
        return
    if flag["tty"]:
        plain_response(handler, 400, "the process kubelet plays no TTY; exec without -t")
        return
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", "SPDY/3.1")
    if protocol:
        handler.send_header("X-Stream-Protocol-Version", protocol)
    handler.end_headers()
    channels = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"))
    wanted = {"error"} | {name for name, param in channels if flag[param]}
    _Session(handler, target, command, wanted, protocol == PROTOCOLS[0]).run()


def plain_response(handler: BaseHTTPRequestHandler, code: int, message: str) -> None:
    """A short text/plain answer (an error before any upgrade)."""
    body = message.encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Session:
    """One upgraded connection: the frame loop on the request thread; pump threads move the
    command's pipes to and from queues."""

    def __init__(self, handler: BaseHTTPRequestHandler, target: ExecTarget, command: list[str],
                 wanted: set[str], v4: bool) -> None:  # fmt: skip
        self.sock: socket.socket = handler.connection
        self.rfile = handler.rfile
        self.target, self.command, self.wanted, self.v4 = target, command, wanted, v4
        self.framer = Framer()
        self.streams: dict[str, int] = {}  # streamType -> stream id
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.events: queue.Queue[tuple[str, int, bytes]] = queue.Queue(maxsize=64)
        self.stdin: queue.Queue[bytes | None] = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.proc: subprocess.Popen[bytes] | None = None
        self.peer_gone = False
        self.last_stream = 0

    def run(self) -> None:
        try:
            self._loop()
        finally:
            os.close(self.wake_r)
            os.close(self.wake_w)
            if self.proc is not None and self.proc.poll() is None:  # the client hung up early
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, 9)
                self.proc.wait()
            self.stdin.put(None)

    def _loop(self) -> None:
        self.sock.setblocking(False)
        with contextlib.suppress(ssl.SSLError, BlockingIOError, ValueError):
            self.inbuf += self.rfile.read1(1 << 16) or b""  # what the header parser read ahead
        deadline = time.monotonic() + STREAMS_TIMEOUT_S
        linger_until: float | None = None
        while not self.peer_gone:
            self._read_frames()
            if self.proc is None and set(self.streams) >= self.wanted:
                self._start()
            if self.proc is None and time.monotonic() > deadline:
                return  # the client never opened its streams
            if self._drain_events() and linger_until is None:
                self.outbuf += self.framer.goaway(self.last_stream)
                linger_until = time.monotonic() + LINGER_S
            self._flush()
            if linger_until is not None and not self.outbuf and time.monotonic() > linger_until:
                return
            self._wait()

    def _wait(self) -> None:
        ssl_pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        if ssl_pending:
            return
        sock_fd = self.sock.fileno()
        writers = [sock_fd] if self.outbuf else []
        readable, _, _ = select.select([sock_fd, self.wake_r], writers, [], 0.5)
        if self.wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 4096)

    def _read_frames(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.peer_gone = True
                break
            self.inbuf += chunk
        for frame in self.framer.parse(self.inbuf):
            if frame.kind == SYN_STREAM:
                self.last_stream = max(self.last_stream, frame.stream_id)
                kind = (frame.headers.get("streamtype") or [""])[0]
                self.streams[kind] = frame.stream_id
                self.outbuf += self.framer.syn_reply(frame.stream_id)
            elif frame.kind == PING:
                self.outbuf += self.framer.ping(frame.stream_id)
            elif frame.kind == "data" and frame.stream_id == self.streams.get("stdin"):
                if frame.data:
                    self.stdin.put(frame.data)
                if frame.fin:
                    self.stdin.put(None)
            elif frame.kind == RST_STREAM and frame.stream_id == self.streams.get("stdin"):
                self.stdin.put(None)
            elif frame.kind == GOAWAY:
                pass  # the client is done opening streams; it hangs up when it has read all

    def _flush(self) -> None:
        while self.outbuf:
            try:
                sent = self.sock.send(self.outbuf[:CHUNK])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            except OSError:
                self.peer_gone = True
                return
            del self.outbuf[:sent]

    def _drain_events(self) -> bool:
        """Move what the pumps produced into frames; True once the result has been sent."""
        done = False
        while len(self.outbuf) < MAX_PENDING_OUT:
            try:
                kind, sid, data = self.events.get_nowait()
            except queue.Empty:
                break
            if kind == "data":
                self.outbuf += self.framer.data(sid, data)
            elif kind == "eof":
                self.outbuf += self.framer.data(sid, b"", fin=True)
            else:  # "exit": every pump has finished before it
                if data:
                    self.outbuf += self.framer.data(self.streams["error"], data)
                self.outbuf += self.framer.data(self.streams["error"], b"", fin=True)
                done = True
        return done

    def _put(self, kind: str, sid: int, data: bytes) -> None:
        self.events.put((kind, sid, data))
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.wake_w, b"x")

    def _start(self) -> None:
        t = self.target
        pipe = subprocess.PIPE
        script = 'cd -- "$1" && shift && exec "$@"'
        argv = ["nsenter", "-t", str(t.pid), "-m", "--", "sh", "-c", script, "sh", t.workdir,
                *self.command]  # fmt: skip
        self.proc = proc = subprocess.Popen(
            argv, env=t.env, start_new_session=True, cwd="/",
            stdin=pipe if "stdin" in self.wanted else subprocess.DEVNULL,
            stdout=pipe if "stdout" in self.wanted else subprocess.DEVNULL,
            stderr=pipe if "stderr" in self.wanted else subprocess.DEVNULL,
        )  # fmt: skip
        t.adopt(proc)
        pumps = []
        for name, pipe_r in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if pipe_r is not None:
                th = threading.Thread(
                    target=self._pump, args=(pipe_r, self.streams[name]), daemon=True
                )
                th.start()
                pumps.append(th)
        if proc.stdin is not None:
            threading.Thread(target=self._feed, args=(proc.stdin,), daemon=True).start()
        threading.Thread(target=self._reap, args=(proc, pumps), daemon=True).start()

    def _pump(self, pipe_r: IO[bytes], sid: int) -> None:
        with pipe_r:
            while chunk := pipe_r.read1(CHUNK):  # type: ignore[attr-defined]
                self._put("data", sid, chunk)
        self._put("eof", sid, b"")

    def _feed(self, pipe_w: IO[bytes]) -> None:
        with contextlib.suppress(OSError):
            while (chunk := self.stdin.get()) is not None:
                pipe_w.write(chunk)
                pipe_w.flush()
        with contextlib.suppress(OSError):
            pipe_w.close()

    def _reap(self, proc: subprocess.Popen[bytes], pumps: list[threading.Thread]) -> None:
        for th in pumps:
            th.join()
        rc = proc.wait()
        code = 128 - rc if rc < 0 else rc
        self._put("exit", 0, _result(code, self.v4))


def _result(code: int, v4: bool) -> bytes:
    """What the error stream carries for exit CODE (remotecommand's httpstream.go)."""
    if not v4:
        return (
            f"command terminated with non-zero exit code: exit status {code}".encode()
            if code
            else b""
        )
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps({
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }).encode()  # fmt: skip
