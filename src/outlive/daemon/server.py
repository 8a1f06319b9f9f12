"""The daemon process: ``python -m outlive.daemon.server SOCKET``.

One per socket (an exclusive lock on ``SOCKET.lock`` decides races between two starters); every
connection is one request and one reply (the wire format is described in
``outlive.daemon.client``), answered on its own thread. Only this user may connect: the socket
lives in a 0700 directory and, where the OS tells, the peer's uid is checked. Requests:
``status`` (the CLI's ``do_status`` for the client's directory and terminal, its agent calls
going through persistent channels), ``run`` (``outlive.daemon.launch``), ``ping``, ``stop``.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import fcntl
import gc
import io
import json
import os
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive.daemon.watch import SourceWatch

# The sources as this daemon loads them, taken before the rest of outlive is imported: an edit
# from here on is seen by the check before each answer (then the daemon retires).
LOADED = SourceWatch()

from outlive import store  # noqa: E402
from outlive.agent import channel  # noqa: E402
from outlive.daemon.client import FALLBACK, IDLE_ENV, RETIRED, TICK_S, maybe_launched  # noqa: E402
from outlive.errors import OutliveError  # noqa: E402

if TYPE_CHECKING:
    from outlive.cli.grammar import StatusArgs

DEFAULT_IDLE_S = 600.0  # like the SSH master's ControlPersist: warm while you work, gone after
_ACCEPT_TICK_S = 1.0
_REQUEST_READ_S = 10.0
_WORKER_IDLE_S = 60.0
# What a request may need that the daemon's start does not import: validating a project's
# config (pydantic builds its models on import: ~0.1 s on a 2-vCPU VM, in front of the first
# fresh project's look or launch it serves). Imported once the daemon has been idle this long
# after its start, beside no request.
WARM_AFTER_S = 1.5
WARM_MODULES = ("outlive._config_schema", "outlive.profiles", "outlive.daemon.launch")


class _Answer(io.StringIO):
    """The client's stdout as the renderer sees it: its tty-ness, width and colour wish."""

    def __init__(self, tty: bool, columns: int | None, no_color: bool) -> None:
        super().__init__()
        self._tty = tty
        self.columns = columns
        self.no_color = no_color

    def isatty(self) -> bool:
        return self._tty


class Daemon:
    def __init__(self, path: str, idle_s: float, watch: SourceWatch | None = None) -> None:
        self.path = path
        self.idle_s = idle_s
        self.watch = watch
        self.started_at = time.time()
        self.last_request = time.monotonic()
        self.stopping = threading.Event()
        self.retired = threading.Event()  # its sources changed: it answers no look any more
        self.active = 0
        self.served = 0  # looks answered (tests use it to prove a look went through the daemon)
        self._lock = threading.Lock()
        self.pool: channel.ChannelPool | None = None
        self.release: Any = None  # gives up the socket and its lock (set by ``serve``)
        self._parsed: dict[tuple[str, ...], StatusArgs | None] = {}
        self.ticks = _Ticks()
        self._frozen = False
        # The steps of the last looks, in ms (the ``timings`` request: the bench's breakdown).
        self.recent: collections.deque[dict[str, float]] = collections.deque(maxlen=64)

    def warm(self) -> None:
        """Import WARM_MODULES once no request has come for WARM_AFTER_S (a request in flight
        puts it off), so that the first project whose config is not cached yet is served
        without pydantic's import in front of it. A failure is left to the request that needs
        the module, which says why."""
        import importlib

        while not self.stopping.is_set():
            with self._lock:
                quiet_s = time.monotonic() - self.last_request
                busy = self.active > 0
            if not busy and quiet_s >= WARM_AFTER_S:
                break
            self.stopping.wait(max(0.1, WARM_AFTER_S - quiet_s))
        for name in WARM_MODULES:
            if self.stopping.is_set():
                return
            try:
                importlib.import_module(name)
            except Exception:  # a broken install: the request that needs it says so
                return

    # -- requests --------------------------------------------------------------------------

    def handle(
        self, doc: dict[str, object], marks: dict[str, float] | None = None
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) for one request; code FALLBACK: the client looks itself.
        ``marks`` gets the ``time.perf_counter()`` of a look's steps (the ``timings`` request)."""
        marks = {} if marks is None else marks
        op = doc.get("op")
        if op == "ping":
            info = {
                "pid": os.getpid(),
                "started_at": self.started_at,
                "idle_s": self.idle_s,
                "channels": len(self.pool) if self.pool is not None else 0,
                "served": self.served,
            }
            return 0, json.dumps(info), ""
        if op == "stop":
            self.stopping.set()
            return 0, json.dumps({"stopping": True}), ""
        if op == "timings":
            return 0, json.dumps({"looks": list(self.recent)}), ""
        if op in ("status", "run") and self.stale():
            return FALLBACK, "", RETIRED.decode()
        marks["checked"] = time.perf_counter()
        if op == "status":
            with self._busy():  # a look in flight keeps the daemon (and its channels) up
                return self._status(doc, marks)
        if op == "run":
            from outlive.daemon.launch import serve_run

            with self._busy():
                answer = serve_run(doc, self.pool)
            if answer[0] != FALLBACK:
                self._count()
            return answer
        return FALLBACK, "", f"unknown request {op!r}"

    def stale(self) -> bool:
        """Whether outlive's sources changed since this daemon loaded them (an edit, an
        upgrade). Then it retires: it answers nothing more, gives up its socket at once (the
        client starts a fresh daemon) and exits once the looks in flight are answered."""
        if self.retired.is_set():
            return True
        if self.watch is None or not self.watch.changed():
            return False
        self.retired.set()
        self.stopping.set()
        if self.release is not None:
            self.release()
        return True

    def _status_args(self, argv: object) -> StatusArgs | None:
        """``argv`` parsed as a ``status`` command line (kept: a look's is the same each time);
        None for anything else, help or a usage error (the client then says so itself)."""
        if not isinstance(argv, list) or argv[:1] != ["status"]:
            return None
        if not all(isinstance(a, str) for a in argv):
            return None
        key = tuple(argv)
        with contextlib.suppress(KeyError):  # one lookup: another thread may clear the dict
            return self._parsed[key]
        from outlive.cli.grammar import StatusArgs
        from outlive.cli.parser import parse

        try:
            args = getattr(parse(argv), "args", None)
        except OutliveError:
            args = None
        if len(self._parsed) > 256:
            self._parsed.clear()
        found = args if isinstance(args, StatusArgs) else None
        self._parsed[key] = found
        return found

    def _status(self, doc: dict[str, object], marks: dict[str, float]) -> tuple[int, str, str]:
        from outlive.cli.run_cmds import do_status

        args = self._status_args(doc.get("argv"))
        if args is None or not isinstance(doc.get("cwd"), str):
            return FALLBACK, "", ""  # help, a usage error, or not a look
        marks["parsed"] = time.perf_counter()
        term, columns, cwd = doc.get("term"), doc.get("columns"), str(doc["cwd"])
        no_color = isinstance(term, dict) and "NO_COLOR" in term
        out = _Answer(bool(doc.get("tty")), columns if isinstance(columns, int) else None, no_color)
        try:
            code = do_status(
                args.runs,
                args.as_json,
                start=Path(cwd),
                out=out,
                pool=self.pool,
                marks=marks,
                discover=args.discover,
            )
        except OutliveError as exc:
            from outlive.cli._terminal import printable

            code, err = exc.exit_code, f"outlive: {printable(exc)}\n"
        else:
            err = ""
        self._count()
        return code, out.getvalue(), err

    def _count(self) -> None:
        with self._lock:
            self.served += 1
            self.last_request = time.monotonic()  # looks and launches keep it alive; pings do not

    # -- connections -----------------------------------------------------------------------

    def serve_connection(self, conn: socket.socket, accepted: float = 0.0) -> None:
        marks = {"accepted": accepted or time.perf_counter()}
        with conn:
            try:
                conn.settimeout(_REQUEST_READ_S)
                if not _same_user(conn):
                    return
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    buf += chunk
                doc = ast.literal_eval(buf.decode("ascii"))
                marks["read"] = time.perf_counter()
                with self.ticks.waiting(conn):  # "I am here": a silent daemon is given up on
                    doc = doc if isinstance(doc, dict) else {}
                    if doc.get("op") == "run" and conn.recv(1) != b"g":
                        return  # the client gave up before our "." reached it: it launches
                    try:
                        code, out, err = self.handle(doc, marks)
                    except Exception:  # the client then looks itself; the log says why
                        traceback.print_exc()
                        code, out, err = FALLBACK, "", ""
                        if doc.get("op") == "run":  # maybe launched: never launched again
                            code, err = 1, maybe_launched("the daemon failed mid-launch")
                out_b, err_b = out.encode("utf-8", "surrogateescape"), err.encode("utf-8")
                header = b"%d %d %d\n" % (code, len(out_b), len(err_b))
                _send_last(conn, header + out_b + err_b)
                marks["sent"] = time.perf_counter()
                if doc.get("op") == "status" and "render" in marks:
                    self.recent.append(_steps(marks))
                    if not self._frozen:
                        # What the first look loaded stays for good: out of the collector's
                        # sight, a full collection no longer walks it during a later look.
                        self._frozen = True
                        gc.freeze()
            except (OSError, ValueError, SyntaxError, MemoryError):
                return  # the client went away or sent garbage; nothing to answer

    @contextlib.contextmanager
    def _busy(self) -> Any:
        with self._lock:
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1

    def idle(self) -> bool:
        with self._lock:
            return self.active == 0 and time.monotonic() - self.last_request > self.idle_s

    def run(self, listener: socket.socket, inode: int) -> None:
        listener.settimeout(_ACCEPT_TICK_S)
        store.keep_warm()
        workers = _Workers(self.serve_connection)
        with contextlib.ExitStack() as stack:
            stack.callback(store.release_warm)
            self.pool = channel.ChannelPool()  # one per daemon: every look's session shares it
            stack.callback(self.pool.close)
            while not self.stopping.is_set() and not self.idle() and _still_ours(self.path, inode):
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                workers.submit(conn, time.perf_counter())
            deadline = time.monotonic() + 30.0  # let looks in flight answer before channels close
            while self.active and time.monotonic() < deadline:
                time.sleep(0.05)


class _Workers:
    """A thread per connection, each kept a while for the next one: starting a thread costs a
    look ~0.2 ms on a small VM, handing a connection to an idle one a wake-up."""

    def __init__(self, serve: Any) -> None:
        self._serve = serve
        self._lock = threading.Lock()
        self._idle: list[list[Any]] = []  # [a lock held until a job is set, the job]

    def submit(self, conn: socket.socket, accepted: float) -> None:
        with self._lock:
            slot = self._idle.pop() if self._idle else None
        if slot is None:
            threading.Thread(target=self._work, args=(conn, accepted), daemon=True).start()
        else:
            slot[1] = (conn, accepted)
            slot[0].release()

    def _work(self, conn: socket.socket, accepted: float) -> None:
        while True:
            self._serve(conn, accepted)
            slot: list[Any] = [threading.Lock(), None]
            slot[0].acquire()
            with self._lock:
                self._idle.append(slot)
            if not slot[0].acquire(timeout=_WORKER_IDLE_S):
                with self._lock:
                    if slot in self._idle:
                        self._idle.remove(slot)
                        return  # idle too long: this thread ends
                slot[0].acquire()  # taken by submit just now: its job is coming
            conn, accepted = slot[1]


class _Ticks:
    """Sends each client still waiting for its reply a ``.`` at once and every ``TICK_S`` after,
    so a client can tell a daemon at work from a stopped or hung one; one thread for the whole
    daemon (a thread per look would cost each look ~0.2 ms). It wakes every ``TICK_S`` while
    looks come, and sleeps until the next one after a quiet minute (then a look wakes it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[socket.socket, list[Any]] = {}  # conn -> [lock, replied, next due]
        self._thread: threading.Thread | None = None
        self._asleep = False

    @contextlib.contextmanager
    def waiting(self, conn: socket.socket) -> Any:
        conn.sendall(b".")  # the first at once, from the serving thread itself
        entry: list[Any] = [threading.Lock(), False, time.monotonic() + TICK_S]
        with self._cond:
            self._waiting[conn] = entry
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, daemon=True)
                self._thread.start()
            elif self._asleep:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._waiting.pop(conn, None)
            with entry[0]:
                entry[1] = True  # no tick after this: the reply's header comes next

    def _tick(self) -> None:
        quiet_since = time.monotonic()
        while True:
            with self._cond:
                now = time.monotonic()
                if self._waiting:
                    quiet_since = now
                elif now - quiet_since > 60.0:
                    self._asleep = True
                    self._cond.wait()
                    self._asleep = False
                    continue
                due = [item for item in self._waiting.items() if item[1][2] <= now]
                if not due:
                    self._cond.wait(TICK_S / 2)  # each tick within 1.5 TICK_S
                    continue
            for conn, entry in due:
                with entry[0]:
                    if not entry[1]:
                        entry[2] = now + TICK_S
                        with contextlib.suppress(OSError):  # full or gone: the reply finds out
                            conn.send(b".", socket.MSG_DONTWAIT)


# A look's steps, each from the end of the one before: the request read (a thread started, one
# line received), the sources checked, its argv parsed, the session open (config, registry), the
# look (registry, one probe per target), the answer rendered, the reply sent.
_STEPS = ("read", "checked", "parsed", "session", "look", "render", "sent")


def _steps(marks: dict[str, float]) -> dict[str, float]:
    out, last = {}, marks["accepted"]
    for step in _STEPS:
        out[step] = round((marks[step] - last) * 1000, 3)
        last = marks[step]
    out["total"] = round((last - marks["accepted"]) * 1000, 3)
    return out


def _send_last(conn: socket.socket, data: bytes) -> None:
    conn.settimeout(None)
    conn.sendall(data)


def _same_user(conn: socket.socket) -> bool:
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return True  # no peer credentials here: the 0700 directory is the guard
    raw = conn.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return bool(uid == os.getuid())


def _still_ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m outlive.daemon.server SOCKET\n")
        return 2
    return serve(argv[1], float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_S), LOADED)


def serve(path: str, idle_s: float, watch: SourceWatch) -> int:
    """Serve on ``path`` until stopped, idle for ``idle_s``, or retired (``watch`` saw outlive's
    sources change); returns at once if another daemon holds the socket."""
    # never through a symlink planted at the lock's name (the directory is ours: defence in depth)
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another daemon holds this socket
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead daemon's socket; we hold the lock, so nobody else is serving
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(64)
    inode = os.stat(path).st_ino
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())
    daemon = Daemon(path, idle_s, watch)
    seat_lock = threading.Lock()
    held = [True]

    def release() -> None:
        """Give up the socket and its lock (once): a fresh daemon may take them at once, while
        this one answers the looks in flight on their own connections."""
        with seat_lock:
            if not held[0]:
                return
            held[0] = False
            if _still_ours(path, inode):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop, which then ends
            os.close(lock_fd)

    daemon.release = release
    threading.Thread(target=daemon.warm, name="warm", daemon=True).start()
    try:
        daemon.run(listener, inode)
    finally:
        release()
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
