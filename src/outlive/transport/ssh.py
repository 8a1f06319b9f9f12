"""The SSH transport: the user's own OpenSSH, one multiplexed master per host.

The user's ``~/.ssh/config`` (aliases, ProxyJump, agent, ports) is honoured because we run their
``ssh``; a target's ``ssh_config`` replaces it with ``-F`` (tests and CI use that, never the
user's file). Host-key checking stays on; ``accept_new_host_keys`` allows first contact only.
Every remote argument is quoted: the remote side runs exactly the argv given, as data.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from outlive._private_dir import private_dir_problem
from outlive.config import Target
from outlive.errors import TransportError, Unreachable
from outlive.transport import ahead, cipher, files
from outlive.transport.base import Completed
from outlive.transport.cipher import preferred_ciphers
from outlive.transport.files import Direction, RsyncOptions

CONNECT_TIMEOUT_S = 10
SERVER_ALIVE_INTERVAL_S = 15  # dead links are noticed in ~1 min, not at TCP's pace (U17)
SERVER_ALIVE_COUNT_MAX = 4
CONTROL_PERSIST_S = 600
SSH_FAILED = 255

_UNREACHABLE_HINTS = (
    "connection timed out",
    "connection refused",
    "no route to host",
    "network is unreachable",
    "could not resolve hostname",
    "banner exchange",
    "connection closed by",
    "connection reset",
    "broken pipe",
    "operation timed out",
)
_MUX_HINTS = ("mux_client", "control socket", "controlsocket", "master is dead")


def control_dir() -> Path:
    """A short directory for ControlPath sockets (a unix socket path must stay < 108 bytes),
    used only when it is this user's own and private: anyone who can write it could plant a
    fake master that every ssh here would talk through."""
    d = Path(tempfile.gettempdir()) / f"outlive-{os.getuid()}"
    problem = private_dir_problem(str(d))
    if problem is not None:
        raise TransportError(
            f"{d} is not safe for ssh's control sockets ({problem}); remove it, or set TMPDIR "
            "to a directory only you can write"
        )
    return d


class SshTransport:
    """Runs argv on a host through ``ssh``; every call shares one connection (ControlMaster)."""

    is_remote = True

    def __init__(self, target: Target) -> None:
        if not target.connection.host:
            raise TransportError(f'target {target.name!r} has no host; set host = "alias-or-ip"')
        self.target = target
        self.name = target.name

    def master_socket(self, timeout_s: float) -> str | None:
        """Where this target's ControlMaster listens, as ``ssh -G`` resolves it with the
        user's own config (~6 ms; no connection is made); None where it cannot say."""
        try:
            shown = subprocess.run(
                [*self.ssh_argv(), "-G", "--", self.target.connection.host or ""],
                capture_output=True,
                timeout=timeout_s,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired, TransportError):
            return None
        for line in shown.splitlines():
            if line.lower().startswith(b"controlpath "):
                path = os.fsdecode(line.split(b" ", 1)[1])
                return None if path == "none" else path
        return None

    def ssh_argv(self, *, batch: bool = True) -> list[str]:
        t = self.target
        argv = ["ssh"]
        if t.connection.ssh_config:
            argv += ["-F", os.path.expanduser(t.connection.ssh_config)]
        opts = {
            "ConnectTimeout": str(CONNECT_TIMEOUT_S),
            "ServerAliveInterval": str(SERVER_ALIVE_INTERVAL_S),
            "ServerAliveCountMax": str(SERVER_ALIVE_COUNT_MAX),
            "ControlMaster": "auto",
            "ControlPath": str(control_dir() / "%C"),
            "ControlPersist": str(CONTROL_PERSIST_S),
        }
        ciphers = preferred_ciphers(self._own_config())  # AES-GCM first where this CPU has AES
        if ciphers is not None:
            opts["Ciphers"] = ciphers
        if batch:
            opts["BatchMode"] = "yes"
        if t.connection.accept_new_host_keys:
            opts["StrictHostKeyChecking"] = "accept-new"  # first contact only; changes still fail
        for key, value in opts.items():
            argv += ["-o", f"{key}={value}"]
        if t.connection.port:
            argv += ["-p", str(t.connection.port)]
        if t.connection.user:
            argv += ["-l", t.connection.user]
        if t.connection.identity_file:
            argv += [
                "-i",
                os.path.expanduser(t.connection.identity_file),
                "-o",
                "IdentitiesOnly=yes",
            ]
        return argv

    def remote_command(self, argv: Sequence[str]) -> str:
        """One string for the remote shell in which every argument is a quoted literal."""
        return " ".join(shlex.quote(a) for a in argv)

    def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float | None = None
    ) -> Completed:
        done = self._run_once(argv, stdin, timeout_s)
        if self.recover(done.returncode, done.stderr):
            # A stale master (ControlPersist expiry, link drop): dropped, so connect afresh.
            done = self._run_once(argv, stdin, timeout_s)
        if done.returncode == SSH_FAILED:
            raise self.classify_error(done.stderr)
        return done

    def _own_config(self) -> str | None:
        """The ``-F`` file this target's ssh reads (None: the user's own ``~/.ssh/config``)."""
        own = self.target.connection.ssh_config
        return os.path.expanduser(own) if own else None

    def config_files(self) -> list[str]:
        """The ssh configuration files (and ``Include`` directories) outlive read to build
        :meth:`ssh_argv`: a recorded command line is stale once one of them changes."""
        return cipher.files_read(self._own_config())

    def master_argv(self) -> list[str]:
        """An ssh that brings this target's master up (``-N``: no session on the box; with
        ``ControlPersist`` it returns once the master is up, at once where one is up already):
        what ``transport.ahead`` starts early, before a command's imports."""
        return [*self.ssh_argv(), "-N", "--", self.target.connection.host or ""]

    def settle(self) -> None:
        """Where this command started the handshake ahead (``transport.ahead``), wait for its
        master; where that ssh found the host unreachable, say so now rather than wait for the
        same timeout a second time."""
        failed = ahead.settle(CONNECT_TIMEOUT_S + 5.0)
        if failed is not None:
            error = self.classify_error(failed)
            if isinstance(error, Unreachable):
                raise error

    def command_argv(self, argv: Sequence[str]) -> list[str]:
        self.settle()  # a handshake started early: ride on its master
        return [
            *self.ssh_argv(),
            "--",
            self.target.connection.host or "",
            self.remote_command(argv),
        ]

    def recover(self, returncode: int, stderr: bytes) -> bool:
        if returncode == SSH_FAILED and _looks_like_mux_failure(stderr):
            self.close()  # a stale master: the next command connects afresh
            return True
        return False

    def failure(self, returncode: int, stderr: bytes) -> Exception | None:
        return self.classify_error(stderr) if returncode == SSH_FAILED else None

    def _run_once(self, argv: Sequence[str], stdin: bytes, timeout_s: float | None) -> Completed:
        full = self.command_argv(argv)
        try:
            proc = subprocess.run(
                full,
                input=stdin,
                capture_output=True,
                timeout=timeout_s,
                start_new_session=True,  # a Ctrl-C here must not kill the master by accident
            )
        except subprocess.TimeoutExpired:
            raise Unreachable(
                f"{self.name}: no answer within {timeout_s:.0f} s over ssh; check the link and "
                f"`ssh {self.target.connection.host} true`"
            ) from None
        except FileNotFoundError:
            raise TransportError("ssh is not installed here; install OpenSSH's client") from None
        return Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def classify_error(self, stderr: bytes) -> TransportError:
        """The one-sentence error for a failed ssh (exit 255), by what its stderr says."""
        text = stderr.decode("utf-8", errors="replace").strip()
        last = text.splitlines()[-1] if text else "ssh failed without a message"
        low = text.lower()
        if "host key verification failed" in low or "remote host identification" in low:
            return TransportError(
                f"{self.name}: the host key of {self.target.connection.host} is unknown or "
                f"changed ({last}); "
                "verify it and add it to known_hosts, or set accept_new_host_keys = true for a "
                "first contact"
            )
        if "permission denied" in low:
            return TransportError(
                f"{self.name}: ssh authentication failed ({last}); check the key and user for "
                f"{self.target.connection.host} (`ssh {self.target.connection.host} true`)"
            )
        if any(h in low for h in _UNREACHABLE_HINTS):
            return Unreachable(f"{self.name}: unreachable ({last})")
        return TransportError(f"{self.name}: ssh failed ({last})")

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        """rsync over this host's master: ``-e`` is our ssh argv, ``there`` is ``host:path``."""
        shell, host = self.ssh_argv(), self.target.connection.host
        return files.rsync_argv(direction, here, there, opts, remote_shell=shell, host=host)

    def forward_argv(self, remote_port: int, local_port: int) -> list[str]:
        """``ssh -N -L``: localhost:``local_port`` here reaches 127.0.0.1:``remote_port`` on
        the host, over the master; fails at once if the port cannot be bound."""
        return [
            *self.ssh_argv(),
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
            "--",
            self.target.connection.host or "",
        ]

    def close(self) -> None:
        """Stop this host's master connection, if any (the next call reconnects)."""
        subprocess.run(
            [*self.ssh_argv(), "-O", "exit", "--", self.target.connection.host or ""],
            capture_output=True,
            timeout=CONNECT_TIMEOUT_S,
            check=False,
        )


def _looks_like_mux_failure(stderr: bytes) -> bool:
    low = stderr.decode("utf-8", errors="replace").lower()
    return any(h in low for h in _MUX_HINTS)
