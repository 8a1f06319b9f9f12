"""The pull's first rsync, started before the roster is in.

An rsync's own start (ssh, a session on the box, the box's rsync, the protocol's handshake) is
on a pull's critical path: it used to begin only once the roster was in and checked. Started
with ``--files-from=-`` as soon as the target's ssh master listens (before the agent the
pull's channel starts has answered; or when that channel is open, where the socket cannot be
named), it does all of that while the agent starts and the roster is asked, then waits:
rsync reads the list from its stdin, and its receiver touches nothing here before the list
has gone to the box and the file list has come back (measured: an rsync ended while it waits
has made no directory, whether the destination exists or not).

The guess is the plan of a small checkpoint root: the whole ``ckpt`` root in one rsync,
without ``-z`` (with ``--compress always``, with it). Once the roster is in and checked, the
unit whose rsync command is exactly the guess's (``claim``) gets it: its list goes to the
waiting rsync, and the transfer starts at once. Anything else (a bigger tree split into
several rsyncs, a compressible one, a roster refused, a guess older than half the stall
timeout, whose box rsync could give up waiting) and the guess is ended unused (``discard``):
then nothing was written, and the pull moves its files as before.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from outlive.lifecycle.pull import CKPT_LABEL, default_dest, superseded_dir
from outlive.lifecycle.transfer import STDIN_LIST, PullOptions, Unit, rsync_argv
from outlive.transport import ahead
from outlive.transport.base import Transport

if TYPE_CHECKING:
    from outlive.lifecycle.pull_box import BoxManifests
    from outlive.session import Session


class _HasMaster(Protocol):
    """A transport that can name its ssh master's socket (``SshTransport``)."""

    name: str

    def master_socket(self, timeout_s: float) -> str | None: ...


# A guess this old is not used: its box rsync has waited for the list for a while already,
# and rsync's own --timeout (the stall timeout) would end it.
MAX_AGE_S = 10.0
# How long the early rsync waits for the ssh master's control socket, and how often it looks.
MASTER_WAIT_S = 10.0
MASTER_POLL_S = 0.002


class EarlyRsync:
    """One rsync started before its list is known (``launch``); ``claim`` hands it over,
    ``discard`` ends it if nobody did, and keeps a later ``launch`` from starting it."""

    def __init__(self, argv: list[str], max_age_s: float, dest: Path, aside: Path) -> None:
        self.argv = argv
        self.dest = dest  # the pull's destination and superseded dir it was made for
        self.aside = aside
        self.max_age_s = max_age_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._lock = threading.Lock()
        self._over = False  # claimed or discarded: a launch after that starts nothing

    @classmethod
    def guess(
        cls,
        source: str,
        dest: Path,
        aside: Path,
        transport: Transport,
        opts: PullOptions,
        label: str = "ckpt",
    ) -> EarlyRsync:
        """The guess for root ``label`` (box path ``source``) landing in ``dest/label``, not
        started yet."""
        unit = Unit(
            label=label,
            source=source,
            local=dest / label,
            files=["-"],  # a list to come (the argv is that of a directory unit)
            paths=[],
            sizes=[],
            compress=opts.compress == "always",
            backup_dir=aside / label,
        )
        argv = rsync_argv(unit, transport, opts, STDIN_LIST)
        return cls(argv, min(MAX_AGE_S, opts.stall_timeout_s / 2), dest, aside)

    @classmethod
    def for_pull(
        cls, session: Session, box: BoxManifests | None, opts: PullOptions
    ) -> EarlyRsync | None:
        """The guess for a pull whose box channel is opening (``box``, from
        ``BoxManifests.opening``), started once the ssh master that channel opens listens
        (or the channel is open): its session rides on the master (started beside the
        channel, before the master was up, it paid for a second ssh handshake). Only over the
        generic agent (ssh, the local target); None elsewhere or where the pull will refuse
        its options."""
        if box is None or box.agent is None or box.rec is None:
            return None
        if opts.compress not in ("auto", "always", "never"):
            return None  # the pull refuses it, saying why
        rec = box.rec
        dest = (opts.dest or default_dest(session.cfg, rec)).expanduser().absolute()
        early = cls.guess(
            rec.ckpt_dir, dest, superseded_dir(dest), box.backend.transport, opts, CKPT_LABEL
        )
        box.when_open(early.launch)
        transport = box.backend.transport
        if callable(getattr(transport, "master_socket", None)):  # an ssh target
            threading.Thread(
                target=early.launch_when_master_is_up, args=(transport,), daemon=True
            ).start()
        return early

    def launch_when_master_is_up(self, transport: _HasMaster) -> None:
        """Launch as soon as the target's ssh master listens (its control socket exists),
        which is before the agent the channel starts has answered: the rsync's own start then
        overlaps the agent's start too. ``ssh -G`` names the socket (~6 ms here); where it
        cannot, the launch waits for the channel (``when_open``)."""
        # The master this pull started ahead names its socket already; else ``ssh -G`` does.
        socket = ahead.socket_of(transport.name) or transport.master_socket(MASTER_WAIT_S)
        if not socket:
            return
        deadline = time.monotonic() + MASTER_WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if self._over or self.proc is not None:
                    return  # claimed, discarded, or launched by the channel's opening
            if os.path.exists(socket):
                self.launch()
                return
            time.sleep(MASTER_POLL_S)

    def launch(self) -> None:
        """Start the rsync (it connects, starts the box's rsync, then waits for its list);
        nothing where it was discarded already or rsync cannot be started here (the pull
        then runs its own rsync, and says why that one failed)."""
        with self._lock:
            if self._over or self.proc is not None:
                return
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, LC_ALL="C"),
                )
            except OSError:
                return
            self.started = time.monotonic()

    def claim(self, argv: list[str]) -> subprocess.Popen[bytes] | None:
        """The waiting rsync, for the unit whose command (its list on stdin) is ``argv``;
        None where it is not that command, is too old, has ended, or was claimed already."""
        with self._lock:
            proc = self.proc
            if proc is None or self._over or argv != self.argv or proc.poll() is not None:
                return None
            if time.monotonic() - self.started > self.max_age_s:
                return None
            self._over, self.proc = True, None
            return proc

    def discard(self) -> None:
        """End the guess if nobody claimed it (it has written nothing: its list never came)."""
        with self._lock:
            self._over = True
            proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.terminate()  # before its stdin closes: an empty list would still run it
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
