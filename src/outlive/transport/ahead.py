"""Connect ahead: the ssh handshake to a run's box starts while the CLI is still importing.

A ``pull`` (or ``logs``, ``cancel``) imports ~0.1 s of Python (its parser, the config, the
registry, the pull itself) before it opens the box's connection, and the handshake (~0.14 s on
the testbed) waited for all of it. Nothing in that handshake depends on those imports: only on
the ssh command line the transport builds for the run's target. So every SSH transport a
session builds records that command line (``remember``) in the project's ``.outlive/ssh-
ahead.marshal``, with what it was built from: the stat of the config file, and the environment
that names the control socket's directory and the key files. The next ``outlive pull RUN``
(``connect_for``) finds RUN's target in the registry (read-only), and where the record is still
current starts that ssh at once: detached (its own session), with /dev/null for its streams,
``-N`` (no session on the box: it only brings the master up, which ``ControlPersist`` keeps).
The pull's own connections wait for that master (``settle``) instead of racing it to a second
handshake.

Anything amiss starts nothing: no project, no record or a record from another config, no
registry, an unknown or ambiguous run, an option before the run. The pull then connects as
before and says itself what is wrong. An early ssh that fails (a host key changed, the box
down) only costs the pull's own connection a wait: that one fails again, with the sentence.

Imports: ``os``, ``marshal`` and ``sqlite3`` only (the point is to be early: json, which brings
``re`` and ``enum``, and subprocess cost ~12 ms of a 2-vCPU box's start, before the handshake).
The record is marshal data for that reason; it is the user's own file (``_own``), as trusted as
the command line it holds, and anything in it that is not what ``remember`` writes is ignored.
The ssh starts through ``os.posix_spawnp`` in its own session, with only its three streams.
"""

from __future__ import annotations

import marshal
import os

TYPE_CHECKING = False  # not typing's: this module runs before the CLI's imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

RECORD_NAME = "ssh-ahead.marshal"
RECORD_MAX_BYTES = 1 << 20
STATE_DIRNAME = ".outlive"  # config.STATE_DIR (config is what this module runs before)
REGISTRY_NAME = "registry.db"
_ROOT_MARKERS = ("outlive.toml", "pyproject.toml", ".git")  # config._ROOT_MARKERS
# What names the control socket's directory (TMPDIR) and expands ``~`` in the key file and
# ssh_config paths: a record made under other values is another command line.
_ENV_KEYS = ("TMPDIR", "TEMP", "TMP", "HOME")
# Commands whose first argument is a run whose box they are about to reach.
COMMANDS = ("pull", "logs", "cancel")

SETTLE_POLL_S = 0.002
SSH_FAILED = 255
SOCKET_LOOKUP_TIMEOUT_S = 2.0  # `ssh -G`, when a record is (re)written
_inflight: list[_Early] = []  # started by connect_for, awaited by settle
_sockets: dict[str, str] = {}  # target -> its master's socket, for those started ahead


def fingerprint(source: str | None, files: list[str] | None = None) -> dict[str, Any]:
    """What a recorded command line was built from, besides the target's name: the project's
    config file, the environment, the user, and the ssh configuration ``files`` the transport
    read to build it (transport/cipher.py; a change to any of them is another record)."""
    env = {k: os.environ.get(k) for k in _ENV_KEYS}
    return {
        "source": source,
        "stat": stat_of(source) if source is not None else None,
        "env": env,
        "uid": os.getuid(),
        "files": [[path, stat_of(path)] for path in files or ()],
    }


def stat_of(path: str) -> list[int] | None:
    """What says a file (or directory) changed: inode, size, mtime; None where there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def remember(
    state_dir: str,
    source: str | None,
    target: str,
    argv: list[str],
    socket: Callable[[], str | None],
    files: list[str] | None = None,
) -> None:
    """Record ``argv`` (an ssh that brings ``target``'s master up) and where that master
    listens (``socket()``, asked only when the record changes: it runs ``ssh -G``) for the
    next command. Written only when it changed, whole or not at all; a read-only or full disk
    skips it."""
    path = os.path.join(state_dir, RECORD_NAME)
    built_from = fingerprint(source, files)
    records = _read(path)
    old = records.get(target)
    if isinstance(old, dict) and old.get("argv") == argv and old.get("built_from") == built_from:
        return
    if not os.path.isdir(state_dir):
        return  # the project's state dir is made by the commands that need it, not here
    records[target] = {"argv": argv, "socket": socket(), "built_from": built_from}
    import threading  # the daemon's sessions may write it from two threads at once

    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with open(fd, "wb") as f:
            f.write(marshal.dumps({"targets": records}))
        os.replace(tmp, path)
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(tmp)


def connect_for(argv: list[str]) -> bool:
    """Start the handshake for ``outlive COMMAND RUN ...`` where it can be had cheaply and
    safely; whether one was started. Never raises: this is only ever a head start."""
    try:
        return _connect_for(argv)
    except Exception:  # a head start that fails is no start, never an error
        return False


def settle(timeout_s: float) -> bytes | None:
    """Wait (up to ``timeout_s``) until the ssh ``connect_for`` started has its master up (its
    control socket made since it started), or has ended (at once where a master was up
    already). Then any ssh rides on the master. Where it failed (exit 255), what it said, once:
    the caller need not wait for the same timeout again to say why."""
    if not _inflight:
        return None
    import time

    deadline = time.monotonic() + timeout_s
    said = None
    for early in list(_inflight):  # any thread about to connect waits, not only the first
        while not early.done() and time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_S)
        if early in _inflight:
            _inflight.remove(early)
            failed = early.failure()
            said = failed if said is None else said
    return said


class _Spawned:
    """A process started by ``posix_spawnp``: the little of ``Popen`` this module needs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        code = self.poll()
        while code is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                code = -1
            else:
                code = os.waitstatus_to_exitcode(status)
            self.returncode = code
        return code

    def kill(self) -> None:
        if self.poll() is None:
            import signal

            os.kill(self.pid, signal.SIGKILL)


def _spawn(command: list[str], err_fd: int) -> _Spawned:
    """Start ``command`` (found on PATH) in a session of its own (a Ctrl-C of the pull must
    not take the master with it), stdin and stdout on /dev/null, stderr on ``err_fd``, and no
    other descriptor: the master it leaves behind must hold nothing of this process's (an
    output pipe a caller waits on to end). Where posix_spawn cannot start a session,
    subprocess does it."""
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    closing = []
    for name in os.listdir(fd_dir):
        fd = int(name)
        if fd > 2 and fd != err_fd:
            try:
                if os.get_inheritable(fd):
                    closing.append((os.POSIX_SPAWN_CLOSE, fd))
            except OSError:  # the listing's own descriptor, closed by now
                continue
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, err_fd, 2),
        *closing,
    ]
    try:
        return _Spawned(os.posix_spawnp(command[0], command, os.environ,
                                        file_actions=actions, setsid=True))  # fmt: skip
    except (NotImplementedError, AttributeError):  # no POSIX_SPAWN_SETSID here
        import subprocess

        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err_fd, start_new_session=True)  # fmt: skip
        spawned = _Spawned(proc.pid)
        proc.returncode = 0  # reaped through _Spawned, not by Popen's finalizer
        return spawned


class _Early:
    """An ssh started ahead, where its master will listen, and its stderr (a file)."""

    def __init__(self, proc: _Spawned, socket: str | None, started: float, err_fd: int):
        self.proc, self.socket, self.started, self.err_fd = proc, socket, started, err_fd

    def done(self) -> bool:
        if self.proc.poll() is not None:
            return True
        if self.socket is None:
            return False
        try:
            made = os.stat(self.socket).st_mtime
        except OSError:
            return False
        return made >= self.started - 1.0  # made by this ssh, not a stale one before it

    def failure(self) -> bytes | None:
        """What the ssh wrote where it ended with 255 (ssh's own failure), else None."""
        try:
            if self.proc.poll() != SSH_FAILED:
                return None
            return os.pread(self.err_fd, 64 * 1024, 0)
        except OSError:
            return None
        finally:
            os.close(self.err_fd)


def _connect_for(argv: list[str]) -> bool:
    if len(argv) < 2 or argv[0] not in COMMANDS or not argv[1] or argv[1].startswith("-"):
        return False
    if any(a in ("-h", "--help") for a in argv):
        return False
    ref, wanted = argv[1], _option(argv[2:], ("-t", "--target"))
    state_dir = _state_dir()
    if state_dir is None:
        return False
    record = os.path.join(state_dir, RECORD_NAME)
    if not _own(record):
        return False  # no SSH target was ever reached from here: the registry stays unopened
    remembered = _read(record)
    if not remembered:
        return False
    target = _target_of(os.path.join(state_dir, REGISTRY_NAME), ref)
    if target is None or (wanted is not None and wanted != target):
        return False
    entry = remembered.get(target)
    if not isinstance(entry, dict) or not _current(entry.get("built_from"), state_dir):
        return False
    command = entry.get("argv")
    if not (isinstance(command, list) and all(isinstance(a, str) for a in command)):
        return False
    if len(command) < 4 or command[0] != "ssh" or command[-3:-1] != ["-N", "--"]:
        return False  # not what SshTransport.master_argv writes
    socket = entry.get("socket")
    import time

    # Its stderr goes to a file (unlinked at once) that is read only if it fails: a pipe would
    # be inherited by the master it leaves behind.
    err_path = os.path.join(state_dir, f".ssh-ahead.{os.getpid()}.err")
    err_fd = os.open(err_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.unlink(err_path)
    started = time.time()
    try:
        proc = _spawn(command, err_fd)
    except BaseException:
        os.close(err_fd)
        raise
    socket = socket if isinstance(socket, str) else None
    _inflight.append(_Early(proc, socket, started, err_fd))
    if socket is not None:
        _sockets[target] = socket
    return True


def socket_of(target: str) -> str | None:
    """Where the master this command started ahead for ``target`` listens (as recorded), or
    None: saves the caller an ``ssh -G``."""
    return _sockets.get(target)


def _own(path: str) -> bool:
    """Whether ``path`` is a file of this user's that no one else may write: a command line
    another user could plant must never run."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _option(args: list[str], names: tuple[str, ...]) -> str | None:
    for i, a in enumerate(args):
        if a == "--":
            return None
        if a in names and i + 1 < len(args):
            return args[i + 1]
        for n in names:
            if n.startswith("--") and a.startswith(n + "="):
                return a[len(n) + 1 :]
    return None


def _state_dir() -> str | None:
    """The project's ``.outlive`` as config finds the project (the nearest directory at or
    above this one with a marker), where it exists."""
    d = os.path.realpath(os.getcwd())
    while True:
        if any(os.path.exists(os.path.join(d, m)) for m in _ROOT_MARKERS):
            state = os.path.join(d, STATE_DIRNAME)
            return state if os.path.isdir(state) else None
        up = os.path.dirname(d)
        if up == d:
            return None
        d = up


def _source_of(state_dir: str) -> str | None:
    project = os.path.dirname(state_dir)
    for name in ("outlive.toml", "pyproject.toml"):
        path = os.path.join(project, name)
        if os.path.isfile(path):
            return path
    return None


def _current(built_from: object, state_dir: str) -> bool:
    """Whether a record was built from what there is now: the config file the project would
    be read from (an outlive.toml added beside a pyproject.toml replaces it), with the same
    stat, the same environment and the same user, and ssh configuration files unchanged."""
    if not isinstance(built_from, dict):
        return False
    source = _source_of(state_dir)
    files = built_from.get("files")
    if not (isinstance(files, list) and all(isinstance(f, list) and f for f in files)):
        return False
    paths = [f[0] for f in files]
    if not all(isinstance(p, str) for p in paths):
        return False
    return built_from.get("source") == source and fingerprint(source, paths) == built_from


def _target_of(registry: str, ref: str) -> str | None:
    """The target of run ``ref`` (an id, a name, or an id's prefix, as ``pick_run`` reads
    it), where the registry says one and only one."""
    if not os.path.isfile(registry):
        return None
    import sqlite3

    uri = "file:" + registry.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    # Read-write, never creating: a read-only connection cannot remove the -wal and -shm files
    # it opens, and a command refused before it touches anything must leave no trace.
    conn = sqlite3.connect(uri + "?mode=rw", uri=True, timeout=0.05)
    try:
        for query in (
            "SELECT DISTINCT target FROM runs WHERE run_id = ?",
            "SELECT DISTINCT target FROM runs WHERE name = ?",
            "SELECT DISTINCT target FROM runs WHERE substr(run_id, 1, length(?1)) = ?1",
        ):
            found = [str(row[0]) for row in conn.execute(query, (ref,))]
            if found:
                return found[0] if len(found) == 1 else None
        return None
    finally:
        conn.close()


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = marshal.loads(f.read(RECORD_MAX_BYTES + 1)[:RECORD_MAX_BYTES])
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    targets = data.get("targets") if isinstance(data, dict) else None
    return dict(targets) if isinstance(targets, dict) else {}
