"""What a pull needs before its heavy imports: which run (``pick_run``), and the box's
manifest calls (``BoxManifests``), whose channel can start opening (the ssh connection, the
agent's start) while the CLI still imports the rest of the pull."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from outlive.agent.channel import AgentChannel
from outlive.backends.base import AgentBackend, Backend
from outlive.errors import BoxError, OutliveError, RunNotFound, TransportError, UsageError
from outlive.session import Session
from outlive.store import RunRecord, Store

ROSTER_TIMEOUT_S = 120.0


def pick_run(store: Store, ref: str, target: str | None = None) -> tuple[RunRecord, str | None]:
    """The run ``ref`` names, and a sentence saying which run was picked when ``ref`` was a
    name (the newest run of that name on ``target``, or on the only target that has one).
    A name used on several targets needs ``target``; an id on another target is refused."""
    runs = store.all()
    rec = next((r for r in runs if r.run_id == ref), None)
    if rec is None:
        named = [r for r in runs if r.name == ref]
        if named:
            return _newest_named(ref, named, target)
        rec = store.resolve(ref)  # an id prefix, or one sentence saying there is no such run
    if target is not None and rec.target != target:
        raise UsageError(
            f"run {rec.run_id} is on target {rec.target!r}, not {target!r}; "
            f"drop -t or give -t {rec.target}"
        )
    return rec, None


def _newest_named(name: str, named: list[RunRecord], target: str | None) -> tuple[RunRecord, str]:
    targets = sorted({r.target for r in named})
    if target is not None:
        named = [r for r in named if r.target == target]
        if not named:
            raise RunNotFound(
                f"no run named {name!r} on target {target!r} (runs of that name are on "
                f"{', '.join(targets)}); give one of those with -t"
            )
    elif len(targets) > 1:
        raise UsageError(
            f"runs named {name!r} are on several targets ({', '.join(targets)}); "
            f"say which with -t TARGET (e.g. outlive pull {name} -t {targets[0]})"
        )
    rec = max(named, key=lambda r: (r.created_at, r.run_id))
    older = len(named) - 1
    of = f", the newest of {len(named)} runs of that name" if older else ""
    return rec, f"{name!r} is run {rec.run_id} on target {rec.target!r}{of}"


class BoxManifests:
    """The pull's calls of the box's ``manifest`` verb: the roster, then the hashes. Where the
    backend reaches the generic agent, both go over one agent channel this pull opens for
    itself (one agent start and one session on the box, not two) and closes as soon as the
    hashes are in; elsewhere (a Kubernetes reader pod) each is a ``backend.manifest`` call."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        generic = isinstance(backend, AgentBackend) and (
            type(backend).manifest is AgentBackend.manifest
        )
        self.agent = backend.agent if isinstance(backend, AgentBackend) and generic else None
        self.channel: AgentChannel | None = None
        self.rec: RunRecord | None = None  # the run, where ``opening`` picked it
        self._opening: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._lock = threading.Lock()
        self._then: list[Callable[[], None]] = []  # to run once the channel is open
        self._open = False
        self._aborted = False

    @classmethod
    def opening(cls, session: Session, ref: str, target: str | None) -> BoxManifests | None:
        """The box of run ``ref`` with its channel already opening (on a thread), or None
        where the run or its backend cannot be had: the pull itself then says why."""
        try:
            rec, _ = pick_run(session.store, ref, target)
            box = cls(session.backend(session.cfg.target(rec.target)))
        except OutliveError:
            return None
        box.rec = rec
        box.start(ROSTER_TIMEOUT_S)
        return box

    def start(self, timeout_s: float) -> None:
        """Open the channel on a thread: the connection and the agent's start overlap what the
        caller does meanwhile. A failure is raised by the first ``ask``."""
        if self.agent is None or self.channel is not None or self._opening is not None:
            return
        agent = self.agent

        def open_channel() -> None:
            try:
                self.channel = agent.open_channel(timeout_s)
            except BaseException as exc:  # raised in the caller's thread by ask()
                self._failed = exc
                return
            with self._lock:
                self._open, then = True, self._then
                self._then = []
            for fn in then:
                fn()

        self._opening = threading.Thread(target=open_channel, name="pull-box", daemon=True)
        self._opening.start()

    def when_open(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (on the opening thread) as soon as the channel is open, i.e. once the
        ssh master is up; at once where it is open already; never where it fails to open."""
        with self._lock:
            if not self._open:
                self._then.append(fn)
                return
        fn()

    def _opened(self) -> None:
        if self._opening is not None:
            self._opening.join()
            self._opening = None
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def ask(self, request: dict[str, Any], *, timeout_s: float) -> Any:
        if self.agent is None:
            return self.backend.manifest(request, timeout_s=timeout_s)
        self._opened()
        if self._aborted:
            raise TransportError(f"{self.agent.transport.name}: the pull stopped")
        if self.channel is None:
            self.channel = self.agent.open_channel(timeout_s)
        reply = self.channel.request("manifest", request, timeout_s)
        if not reply.get("ok"):
            raise BoxError(
                f"{self.agent.transport.name}: {reply.get('error', 'unknown agent error')}",
                kind=str(reply.get("kind", "error")),
            )
        return reply.get("result")

    def last(self, request: dict[str, Any], timeout_s: float) -> Any:
        """The last request: the channel closes as soon as it is answered (while the transfer
        still runs), not at the end of the pull."""
        try:
            return self.ask(request, timeout_s=timeout_s)
        finally:
            self.close()

    def abort(self) -> None:
        """The pull stopped (Ctrl-C, an error): end the agent's channel now, so that a request
        in flight on another thread (the box hashing a big tree: minutes) ends at once instead
        of being waited for; that thread then closes the channel. Only the process is
        signalled here: its pipes belong to the thread reading them."""
        self._aborted = True
        channel = self.channel
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.proc.kill()

    def close(self) -> None:
        if self._opening is not None:
            # A pull that ended before its first request (an error, Ctrl-C): wait a little for
            # the opening; one still connecting ends on its own (its stdin closes with us).
            self._opening.join(timeout=1.0)
            if self._opening.is_alive():
                return
            self._opening, self._failed = None, None
        if self.channel is not None:
            self.channel.close()  # EOF: the agent ends once its request is answered
            self.channel = None

    def __enter__(self) -> BoxManifests:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
