"""The thin client: hand a ``status`` (or single ``run``) command line to the daemon, print its
answer.

This module is on the hot path of every look, so it imports only ``os``, ``sys`` and the C
``_socket`` module: ``socket`` and ``json`` would pull in ``enum`` and ``re`` (~15 ms on a small
VM, as much as the rest of the look), and even ``zlib`` is a shared library to load. Hence the
wire format. A request is one line, the ``ascii()`` of a dict of literals, read back by the
daemon with ``ast.literal_eval``; a reply is a header line ``CODE NOUT NERR`` followed by that
many bytes of stdout and of stderr (CODE -1: look directly). Before the header the daemon sends a
``.`` as soon as it has read the request and one every ``TICK_S`` while it works, so a daemon that
is stopped or hung (silent for ``SILENCE_S``) is given up on at once and the CLI looks by itself.
A daemon is found by a socket whose name is a digest of everything that could make its answer
differ from the CLI's own: the interpreter, where this outlive lives and the environment
variables the look reads. Its source files are the daemon's to watch (``daemon.watch``): it
answers nothing once one of them changed (an upgrade or an edit never talks to stale code), but
retires, and the CLI looks itself and starts a fresh daemon. A served look ends the process with
``os._exit`` once its answer is flushed: there is nothing to clean up, and an interpreter's
orderly shutdown costs a look ~2 ms.
"""

from __future__ import annotations

import os
import sys

from outlive._private_dir import private_dir_problem

try:
    import _socket as _sock  # the C module behind `socket`, without its enum wrappers
except ImportError:  # pragma: no cover - an interpreter without it: use the public module
    import socket as _sock  # type: ignore[no-redef]

TYPE_CHECKING = False  # typing itself is not imported on the hot path
if TYPE_CHECKING:
    from typing import Any, TypedDict

    class DaemonInfo(TypedDict):
        """A live daemon as it describes itself (its ``ping`` reply, plus its socket)."""

        pid: int
        started_at: float
        idle_s: float
        channels: int
        served: int
        socket: str
        state: str  # "answering", or "not answering" (stopped or hung: only its pid is known)


DISABLE_ENV = "OUTLIVE_NO_DAEMON"
IDLE_ENV = "OUTLIVE_DAEMON_IDLE_S"
DIR_ENV = "OUTLIVE_DAEMON_DIR"  # where the sockets live (default: <tmp>/outlive-<uid>)
# What a look or a served `run` reads from the environment, itself or through the tools it runs:
# ssh (HOME, PATH, USER, the agent socket, askpass, the locale it forwards: SendEnv LANG LC_*),
# config and temp paths, imports (PYTHONPATH), rsync (RSYNC_*: a `run` may push the tree), Slurm's
# clients (SLURM_CONF finds the cluster; SQUEUE_*/SACCT_* change their output), outlive's own
# settings (OUTLIVE_*), and the provider keys `status` prices targets with (a daemon started with
# one key never answers for another). Per-terminal variables (PWD, SSH_TTY, ...) stay out, or
# every shell would get its own daemon.
_ENV_KEYS = (
    "HOME", "PATH", "USER", "PYTHONPATH", "TMPDIR", "TEMP", "TMP", "LANG", "LC_ALL",
    "SSH_AUTH_SOCK", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR", "KUBECONFIG", "RUNPOD_API_KEY", "PAPERSPACE_API_KEY",
)  # fmt: skip
_ENV_PREFIXES = ("OUTLIVE_", "SLURM_", "SQUEUE_", "SACCT_", "SBATCH_", "LC_", "RSYNC_")
_TERM_KEYS = ("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR")
# A look's worst case: a channel opened, the agent installed, opened again, a request timed out
# (15 s each, targets in parallel). Past this the daemon is taken as hung and the CLI looks itself.
REPLY_TIMEOUT_S = 90.0
# A live daemon answers a request with a "." at once and one every TICK_S while the look runs;
# this long without a byte (SIGSTOPped, hung, or a backlog nobody accepts) means it is not there.
TICK_S = 0.4
SILENCE_S = 1.5
# A launch may push the project first: no overall limit while the daemon ticks, and more slack
# for a tick once it has acknowledged (a false "silent" costs a launch of unknown fate).
RUN_TIMEOUT_S = 24 * 3600.0
RUN_SILENCE_S = 10.0


def socket_dir() -> str | None:
    """This user's private directory for outlive's sockets, or None if it is not safe to use
    (another owner, or group/other access: someone else could answer in the daemon's place)."""
    path = _socket_dir_path()
    return None if path is None or private_dir_problem(path) else path


def _socket_dir_path() -> str | None:
    path = os.environ.get(DIR_ENV)
    if not path:
        base = os.environ.get("TMPDIR") or os.environ.get("TEMP") or os.environ.get("TMP") or "/tmp"
        path = os.path.join(base, f"outlive-{os.getuid()}")
    try:
        return os.path.abspath(path)  # the daemon runs in "/": a relative path is the client's
    except OSError:
        return None  # relative to a directory that is gone


def unused_because() -> str | None:
    """Why this environment uses no daemon (a sentence), or None when it may."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return f"{DISABLE_ENV} is set, so every look is made by the CLI itself"
    path = _socket_dir_path()
    if path is None:
        return f"{DIR_ENV} is relative to a directory that is gone, so no daemon is used"
    problem = private_dir_problem(path)
    if problem is not None:
        return (
            f"no daemon is used: its socket directory {path} is not safe ({problem}); remove "
            f"it, or set {DIR_ENV} to a directory only you can use"
        )
    return None


# This outlive's package directory: part of the key (another checkout is another daemon).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The largest prime below 2**64. The key is the look's context read as one integer, modulo it: a
# digest that loads no module (zlib, hashlib); two contexts meet only if they differ by a multiple.
_KEY_PRIME = (1 << 64) - 59


def daemon_key() -> str:
    env = sorted(
        (k, v) for k, v in os.environ.items() if k in _ENV_KEYS or k.startswith(_ENV_PREFIXES)
    )
    context = ascii([sys.executable, sys.version, PACKAGE_DIR, env]).encode()
    return f"{int.from_bytes(context, 'little') % _KEY_PRIME:016x}"


def socket_path() -> str | None:
    d = socket_dir()
    return None if d is None else os.path.join(d, f"d-{daemon_key()}.sock")


FALLBACK = -1  # the reply code for "look directly"
RETIRED = b"retired"  # FALLBACK's stderr from a daemon whose sources changed: start a fresh one


def _recv_exact(conn: Any, n: int, buf: bytes) -> bytes:
    while len(buf) < n:
        chunk = conn.recv(max(1 << 16, n - len(buf)))
        if not chunk:
            raise ConnectionError("the daemon closed the connection before answering")
        buf += chunk
    return buf


class NotOurs(ConnectionRefusedError):
    """The socket is served by another user's process (a socket or a symlink planted in the
    daemon's place): never asked, never answered from; the CLI looks itself."""


def _check_peer(conn: Any) -> None:
    """Refuse a listener of another uid, whatever the path led to (the 0700 directory is the
    first guard; this one holds even if the path was swapped after that check)."""
    peercred = getattr(_sock, "SO_PEERCRED", None)
    if peercred is None:
        return  # no peer credentials here: the 0700 directory is the guard
    raw = conn.getsockopt(_sock.SOL_SOCKET, peercred, 12)  # struct ucred: pid, uid, gid
    if int.from_bytes(raw[4:8], sys.byteorder) != os.getuid():
        raise NotOurs("the daemon's socket is served by another user")


class Acknowledged(ConnectionError):
    """The daemon took the request (its first ``.`` came) and then died or went silent: what it
    did with the request is unknown, so a launch must not be made again."""


def exchange(
    path: str,
    doc: dict[str, object],
    timeout_s: float = REPLY_TIMEOUT_S,
    silence_s: float = SILENCE_S,
    commit: bool = False,
) -> tuple[int, bytes, bytes]:
    """One request and its reply (code, stdout, stderr); OSError if there is no daemon, or if it
    is silent for ``SILENCE_S`` (``silence_s`` once it acknowledged: stopped or hung), or has not
    answered within ``timeout_s``; :class:`Acknowledged` (an OSError) for any of these after the
    daemon acknowledged the request. With ``commit`` (a launch) the client answers the daemon's
    first ``.`` with a ``g`` (go), and the daemon acts only on that: a client that gave up
    waiting for the ``.`` never sends it, so a late daemon cannot act on a request the client
    has taken back, and the request counts as acknowledged from the ``g`` on."""
    import time  # a built-in module: nothing to load

    deadline = time.monotonic() + timeout_s
    conn = _sock.socket(_sock.AF_UNIX, _sock.SOCK_STREAM)
    acked = False
    try:
        conn.settimeout(min(SILENCE_S, timeout_s))
        conn.connect(path)
        _check_peer(conn)
        conn.sendall(ascii(doc).encode("ascii") + b"\n")
        buf = b""
        while b"\n" not in buf:
            if time.monotonic() > deadline:
                raise TimeoutError("the daemon did not answer in time")
            chunk = conn.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the daemon closed the connection before answering")
            if not acked:
                # a live daemon's first byte is its "." (the ack), never a header
                acked = True  # from here on (the "g" included) the daemon may have acted
                if commit:
                    conn.sendall(b"g")
                conn.settimeout(min(silence_s, timeout_s))
            buf = (buf + chunk).lstrip(b".")  # the ticks come only before the header
        head, rest = buf.split(b"\n", 1)
        code, n_out, n_err = (int(x) for x in head.split())
        body = _recv_exact(conn, n_out + n_err, rest)
    except (OSError, ValueError) as exc:
        if acked:
            raise Acknowledged(str(exc)) from None
        raise
    finally:
        conn.close()
    return code, body[:n_out], body[n_out : n_out + n_err]


def _columns(tty: bool) -> int | None:
    """The width the CLI's own look would render at: ``$COLUMNS`` (rich honours it, on a
    terminal or not), else the terminal's; None leaves the renderer's default."""
    given = os.environ.get("COLUMNS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    if not tty:
        return None
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return None


def maybe_launched(why: str) -> str:
    """The one sentence for a launch whose fate is unknown (it is never made a second time)."""
    return f"outlive: {why}; the launch may or may not have started, `outlive status` will tell\n"


def run_via_daemon(argv: list[str]) -> int | None:
    """Have the daemon launch ``outlive run ...`` over its open channel; the exit code, or None
    to launch directly. None only while the daemon has not acknowledged the request, or when it
    answered FALLBACK (it launched nothing): once acknowledged, a daemon that dies or goes
    silent gets one sentence and exit 1, never a second launch."""
    path = _daemon_path()
    if path is None:
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    doc: dict[str, object] = {"op": "run", "argv": argv, "cwd": cwd}
    try:
        code, out, err = exchange(
            path, doc, timeout_s=RUN_TIMEOUT_S, silence_s=RUN_SILENCE_S, commit=True
        )
    except Acknowledged as exc:
        sys.stderr.write(maybe_launched(f"the daemon stopped answering ({exc})"))
        return 1
    except (FileNotFoundError, ConnectionRefusedError):
        import atexit

        atexit.register(spawn, path)  # as a look does: the next command is served warm
        return None
    except (OSError, ValueError):
        return None  # nothing was acknowledged: nothing was launched
    return _answer(path, code, out, err)


def _daemon_path() -> str | None:
    if os.environ.get(DISABLE_ENV, "") not in ("", "0") or not hasattr(_sock, "AF_UNIX"):
        return None
    return socket_path()


def _write(code: int, out: bytes, err: bytes) -> int:
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(err)
    sys.stderr.buffer.flush()
    return code


def status_via_daemon(argv: list[str]) -> int | None:
    """Have the daemon run ``outlive status ...``; the exit code, or None to look directly.

    With no daemon running, one is started in the background as this process exits, so the
    next look is served warm.
    """
    path = _daemon_path()
    doc = status_request(argv)
    if path is None or doc is None:
        return None
    try:
        code, out, err = exchange(path, doc)
    except (FileNotFoundError, ConnectionRefusedError):
        import atexit

        atexit.register(spawn, path)
        return None
    except (OSError, ValueError):
        return None  # a daemon that died mid-look, or answered garbage: look directly
    return _answer(path, code, out, err)


def _answer(path: str, code: int, out: bytes, err: bytes) -> int | None:
    """Write a served answer and return its exit code; None for FALLBACK (after a retired
    daemon, a fresh one is started as this process exits)."""
    if code != FALLBACK:
        return _write(code, out, err)
    if err == RETIRED:
        import atexit

        atexit.register(spawn, path)
    return None


def status_request(argv: list[str]) -> dict[str, object] | None:
    """The request of a look: its command line, directory and terminal; None if the directory
    is gone (the CLI's own look says so in one sentence)."""
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    tty = sys.stdout.isatty()
    return {
        "op": "status",
        "argv": argv,
        "cwd": cwd,
        "tty": tty,
        "columns": _columns(tty),
        "term": {k: os.environ[k] for k in _TERM_KEYS if k in os.environ},
    }


def _starting(path: str) -> bool:
    """Whether a daemon holds ``path``'s lock already (starting up, not yet listening)."""
    import fcntl

    try:
        fd = os.open(path + ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def spawn(path: str) -> None:
    """Start a daemon for ``path`` in its own session, unless one is starting already (a daemon
    that loses the race for the lock exits at once)."""
    import subprocess

    if _starting(path):
        return
    try:
        fd = os.open(
            path[: -len(".sock")] + ".log",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
            0o600,
        )
    except OSError:
        return
    with os.fdopen(fd, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "outlive.daemon.server", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )


def _ask(path: str, op: str, timeout_s: float) -> dict[str, object] | None:
    import json

    try:
        code, out, _ = exchange(path, {"op": op}, timeout_s=timeout_s)
        reply = json.loads(out) if code == 0 else None
    except (OSError, ValueError):
        return None
    return reply if isinstance(reply, dict) else None


def cast_info(doc: dict[str, object]) -> DaemonInfo:
    """A ping reply as a DaemonInfo (the daemon of the same source wrote it)."""
    return doc  # type: ignore[return-value]


def running() -> list[DaemonInfo]:
    """Every daemon of this user: each live one as it describes itself, and each that holds its
    socket but does not answer (stopped or hung) as ``state: "not answering"`` with its pid."""
    d = socket_dir()
    if d is None:
        return []
    found = []
    for name in sorted(os.listdir(d)):
        if name.startswith("d-") and name.endswith(".sock"):
            path = os.path.join(d, name)
            info = _ask(path, "ping", 5.0)
            if info is not None:
                info["socket"] = path
                info["state"] = "answering"
                found.append(cast_info(info))
                continue
            pid = _silent_daemon_pid(path)
            if pid is not None:
                found.append(_silent_info(path, pid))
    return found


def _silent_info(path: str, pid: int) -> DaemonInfo:
    try:
        started_at = os.stat(path + ".lock").st_mtime  # written as it started serving
    except OSError:
        started_at = 0.0
    info: dict[str, object] = {"pid": pid, "started_at": started_at, "idle_s": 0.0}
    info.update(channels=0, served=0, socket=path, state="not answering")
    return cast_info(info)


def _silent_daemon_pid(path: str) -> int | None:
    """The pid of the daemon that holds ``path``'s lock without answering, if it is ours: a
    process of this user running ``outlive.daemon.server`` for exactly this socket."""
    if not _starting(path):
        return None  # nobody holds the lock: a dead daemon's socket, not a running one
    try:
        with open(path + ".lock", "rb") as f:
            pid = int(f.read(32).split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _is_our_daemon(pid, path) else None


def _is_our_daemon(pid: int, path: str) -> bool:
    proc = f"/proc/{pid}"
    try:
        if os.stat(proc).st_uid != os.getuid():
            return False
        with open(proc + "/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(proc + "/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in (b"Z", b"X"):
        return False  # exited, not yet reaped
    args = [a.decode("utf-8", "surrogateescape") for a in argv if a]
    return "outlive.daemon.server" in args and args[-1] == path


def _kill_silent(info: DaemonInfo, wait_s: float) -> bool:
    """Stop a daemon that does not answer: TERM (and CONT, so a stopped one acts on it), then
    KILL after ``wait_s``; then its socket goes. Only our own daemon, checked again just before."""
    import contextlib
    import signal
    import time

    pid, path = int(info["pid"]), str(info["socket"])
    if not _is_our_daemon(pid, path):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and _is_our_daemon(pid, path):
        time.sleep(0.05)
    if _is_our_daemon(pid, path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _is_our_daemon(pid, path):
            time.sleep(0.05)
    deadline = time.monotonic() + 2.0  # an exiting process drops its cmdline before its files
    while _starting(path) and time.monotonic() < deadline and not _is_our_daemon(pid, path):
        time.sleep(0.02)
    if not _starting(path):  # the lock is free: nobody serves this socket any more
        with contextlib.suppress(OSError):
            os.unlink(path)
    return not _is_our_daemon(pid, path)


def stop_all(wait_s: float = 10.0) -> list[DaemonInfo]:
    """Ask every live daemon of this user to exit, and wait until their sockets are gone (each
    answers the looks in flight and closes its agent channels first); one that does not answer
    gets TERM, then KILL."""
    import time

    found = running()
    stopped = [
        info
        for info in found
        if info.get("state") == "answering" and _ask(str(info["socket"]), "stop", 10.0) is not None
    ]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(os.path.exists(d["socket"]) for d in stopped):
        time.sleep(0.05)
    silent = [info for info in found if info.get("state") == "not answering"]
    return stopped + [info for info in silent if _kill_silent(info, 2.0)]
