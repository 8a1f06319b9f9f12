"""The run lifecycle on any target: launch, status (one probe per target), cancel, log tails.

Each function takes the command's :class:`~outlive.session.Session` and calls the target's
backend through its interface, never asking which platform it is. The box's records (run.json,
launch.json, exit.json) are the truth; the registry caches what the last look saw.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from outlive import run_status, wire
from outlive._shapes import shape
from outlive.backends.base import ArrayPlan, CancelReply, Launched, LaunchReply
from outlive.errors import ConfigError, TransportError, UsageError
from outlive.naming import check_command, check_name, default_name, new_run_id
from outlive.run_status import RunStatus
from outlive.store import RunRecord

if TYPE_CHECKING:
    from outlive.backends.base import Backend
    from outlive.config import Target
    from outlive.session import Session

# A look must be cheap and must not hang on a dead link: past this, the target is unreachable.
LOOK_TIMEOUT_S = 15.0


def launch_request(
    target: Target, backend: Backend, run_id: str, name: str, command: list[str], detach: str | None
) -> wire.LaunchRequest:
    """The agent's `launch` request: the run, and everything the target gives every job."""
    return wire.LaunchRequest(
        run_id=run_id,
        name=name,
        command=command,
        workdir=target.placement.workdir,
        durable=target.placement.durable,
        backend=backend.box_backend(detach),
        env=dict(target.policy.env),
        hf_home=target.placement.hf_home,
        secrets=list(target.policy.secrets),
        target=target.name,
        profile=target.profile,
        kill_grace_s=target.policy.kill_grace_s,
        spot_grace_s=target.policy.spot_grace_s,
        mtbf_s=target.policy.mtbf_s,
        created_at=time.time(),
    )


def launch(
    session: Session,
    target_name: str,
    command: list[str],
    name: str | None,
    detach: str | None = None,
) -> Launched:
    """Start ``command`` detached on the target; return once the supervisor runs the job."""
    from outlive.lifecycle.push import launch_deployed

    check_command(command)
    target = session.target(target_name)
    run_name = check_name(name if name is not None else default_name(command))
    backend = session.backend(target)
    request = launch_request(target, backend, new_run_id(), run_name, command, detach)
    reply = launch_deployed(session, target, backend.transport, backend.launch, request)
    return _record(session, request, reply, state=wire.State.RUNNING)


def launch_array(
    session: Session,
    target_name: str,
    commands: Sequence[list[str]],
    name: str | None = None,
    *,
    throttle: int | None = None,
    after: Sequence[str] = (),
) -> list[Launched]:
    """Launch ``commands`` as one fan-out (cell i runs commands[i] as run ``<name>-<i>``, at
    most ``throttle`` at once) that starts only after the runs ``after`` succeeded."""
    from outlive.lifecycle.push import launch_deployed

    if not commands or any(not c or any("\x00" in a for a in c) for c in commands):
        raise UsageError("every cell needs a command (and no NUL bytes in it)")
    if throttle is not None and throttle < 1:
        raise UsageError("the array throttle must be at least 1")
    target = session.target(target_name)
    backend = session.backend(target)
    base_name = check_name(name if name is not None else default_name(list(commands[0])))
    plan = ArrayPlan(
        names=tuple(check_name(f"{base_name}-{i}") for i in range(len(commands))),
        commands=tuple(tuple(c) for c in commands),
        throttle=throttle,
        after=tuple(status(session, list(after))) if after else (),
    )
    request = launch_request(target, backend, new_run_id(), plan.names[0], commands[0], None)
    replies = launch_deployed(
        session, target, backend.transport, lambda r: backend.launch_array(r, plan), request
    )
    return [
        _record(
            session,
            request,
            reply,
            state=wire.State.PENDING,
            run_id=f"{request.run_id}-{i}",
            name=plan.names[i],
            command=list(plan.commands[i]),
        )
        for i, reply in enumerate(replies)
    ]


def _record(
    session: Session,
    request: wire.LaunchRequest,
    reply: LaunchReply,
    *,
    state: wire.State,
    run_id: str | None = None,
    name: str | None = None,
    command: list[str] | None = None,
) -> Launched:
    rec = RunRecord(
        run_id=run_id or request.run_id,
        name=name or request.name,
        target=request.target or "",
        command=command if command is not None else request.command,
        run_dir=reply.run_dir,
        ckpt_dir=reply.ckpt_dir,
        created_at=request.created_at,
        state=state.value,
    )
    session.store.add(rec)
    return Launched(rec.run_id, rec.name, rec.target, rec.run_dir, rec.ckpt_dir, reply.pid)


def read_queue_file(path: Path) -> list[list[str]]:
    """One command per line (shell words, as typed), blank lines and ``#`` comments skipped."""
    import shlex

    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        why = exc.strerror or exc
        raise UsageError(f"cannot read queue file {path} ({why}); check the path") from None
    commands = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            commands.append(shlex.split(line))
        except ValueError as exc:
            raise UsageError(f"{path}:{n}: {exc}; fix the quoting on that line") from None
    if not commands:
        raise UsageError(f"queue file {path} holds no command")
    return commands


def status(session: Session, refs: Iterable[str] = ()) -> list[RunStatus]:
    """The state of the given runs (all known runs if none), one probe per target."""
    with session.store as store:
        refs = list(refs)
        records = [store.resolve(r) for r in refs] if refs else store.all()
        by_target: dict[str, list[RunRecord]] = {}
        for rec in records:
            by_target.setdefault(rec.target, []).append(rec)
        results: dict[str, RunStatus] = {}
        if len(by_target) == 1:
            results = _probe_target(session, *next(iter(by_target.items())))
        elif by_target:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(8, len(by_target))) as pool:
                looks = pool.map(lambda item: _probe_target(session, *item), by_target.items())
                for look in looks:
                    results.update(look)
        out = [results[rec.run_id] for rec in records]
        store.update_many([st for st in out if not st.stale])
    return out


def _probe_target(
    session: Session, target_name: str, records: list[RunRecord]
) -> dict[str, RunStatus]:
    try:
        backend = session.backend(target_name)
        probes = backend.probe([r.run_dir for r in records], timeout_s=LOOK_TIMEOUT_S)
    except (TransportError, ConfigError) as exc:
        # Unreachable is not dead: report what we last saw, marked stale (GEN8, U3).
        return {r.run_id: _stale(r, str(exc)) for r in records}
    return {rec.run_id: _merge(rec, box) for rec, box in zip(records, probes, strict=True)}


def _merge(rec: RunRecord, box: wire.RunProbe) -> RunStatus:
    return run_status.merged(
        box,
        run_id=rec.run_id,
        name=rec.name,
        target=rec.target,
        command=rec.command,
        run_dir=rec.run_dir,
        ckpt_dir=rec.ckpt_dir,
        created_at=rec.created_at,
    )


def _stale(rec: RunRecord, error: str) -> RunStatus:
    return run_status.stale(
        rec.status,
        run_id=rec.run_id,
        name=rec.name,
        target=rec.target,
        state=rec.state,
        command=rec.command,
        run_dir=rec.run_dir,
        ckpt_dir=rec.ckpt_dir,
        created_at=rec.created_at,
        error=error,
    )


class PushReport(TypedDict):
    """``outlive push --json``."""

    target: str
    files: int
    size_bytes: int
    method: str
    verified: bool
    problems: list[str]
    warnings: list[str]  # scripts that would break if run (CRLF, U26): pushed anyway


def push_and_verify(session: Session, target_name: str) -> PushReport:
    """``outlive push``: sync, then have the box hash its copy against the local manifest."""
    from outlive.lifecycle.push import push

    target = session.target(target_name)
    result = push(session, target)
    problems: list[str] = []
    if not target.is_local:
        reply = session.agent(target).call(
            "verify_deploy", {"workdir": target.placement.workdir, "manifest": result.manifest}
        )
        problems = reply["problems"]
    return {
        "target": target.name,
        "files": result.files,
        "size_bytes": result.size_bytes,
        "method": result.method,
        "verified": not problems,
        "problems": problems,
        "warnings": list(result.warnings),
    }


class SecretReply(TypedDict, total=False):
    """``outlive secret push --json``: where the value went (never the value)."""

    path: str
    mode: str
    fs: str
    mount: str
    target: str
    name: str


def secret_push(session: Session, target_name: str, name: str, value: str) -> SecretReply:
    """Send a secret on the agent's stdin into a 0600 file on box-local disk (U34). Refused under
    the durable path and under every tier the profile marks shared or surviving destroy."""
    from outlive.profiles import load_profile

    target = session.target(target_name)
    refuse = [target.placement.durable]
    profile = load_profile(target.profile, session.cfg.profile_dirs)
    for tier in profile.storage:
        if (tier.shared is True or tier.survives_destroy is True) and tier.path.startswith(
            ("/", "~", "$")
        ):
            refuse.append(tier.path.replace("{project}", session.cfg.project_name))
    reply: SecretReply = session.agent(target).call(
        "secret_put", {"name": name, "value": value, "refuse_under": refuse}
    )
    reply["target"] = target.name
    reply["name"] = name
    return reply


def cancel(session: Session, ref: str) -> CancelReply:
    rec = session.store.resolve(ref)
    target = session.target(rec.target)
    result = session.backend(target).cancel(rec.run_dir, target.policy.kill_grace_s)
    result["run_id"], result["name"] = rec.run_id, rec.name
    return result


def tail(session: Session, ref: str, lines: int) -> bytes:
    rec = session.store.resolve(ref)
    return session.backend(rec.target).tail(rec.run_dir, lines=lines).data


class RemoteLog:
    """A run's whole log as a binary stream (``read(n)``), fetched from its box in chunks by
    offset, so a huge log is never held in memory at once."""

    CHUNK_BYTES = 4 << 20

    def __init__(self, session: Session, ref: str) -> None:
        self.record = session.store.resolve(ref)
        self.target = session.target(self.record.target)
        self._backend = session.backend(self.target)
        self._offset = 0
        self._buf = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            chunk = self._backend.tail(
                self.record.run_dir, offset=self._offset, max_bytes=self.CHUNK_BYTES
            )
            self._offset = chunk.offset
            self._buf += chunk.data
            self._eof = not chunk.data
        if n < 0:
            n = len(self._buf)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


@shape(frozen=True)
class FollowEnd:
    """The end of a followed log: the run's final look (its state and, if it died, why)."""

    status: RunStatus


@shape(frozen=True)
class FollowNext:
    """``--follow-name``: the log goes on with the newer run of the same name."""

    run_id: str


def follow(
    session: Session,
    ref: str,
    lines: int,
    *,
    follow_name: bool = False,
    poll_s: float = 0.5,
    max_backoff_s: float = 10.0,
    probe_every_s: float = 2.0,
) -> Iterator[bytes | TransportError | FollowEnd | FollowNext]:
    """Yield log chunks until the run ends, then its final look (:class:`FollowEnd`).

    A connection error is yielded (not raised) and the follow resumes from the same byte offset,
    so no line is lost or repeated. A run that ends without an exit record (a reboot, a kill)
    is noticed by a probe every ``probe_every_s`` of silence, not waited for forever. With
    ``follow_name`` the follow goes on to the next run launched under the same name."""
    rec = session.store.resolve(ref)
    while True:
        end = yield from _follow_one(session, rec, lines, poll_s, max_backoff_s, probe_every_s)
        yield FollowEnd(end)
        if not follow_name:
            return
        rec = _next_of_name(session, rec, poll_s)
        yield FollowNext(rec.run_id)
        lines = -1  # the whole log of the relaunched run


def _follow_one(
    session: Session,
    rec: RunRecord,
    lines: int,
    poll_s: float,
    max_backoff_s: float,
    probe_every_s: float,
) -> Generator[bytes | TransportError, None, RunStatus]:
    backend = session.backend(rec.target)
    offset: int | None = None
    backoff_s = poll_s
    quiet_since = time.monotonic()
    final: RunStatus | None = None
    while True:
        try:
            if offset is None:
                chunk = backend.tail(rec.run_dir, lines=lines, timeout_s=LOOK_TIMEOUT_S)
            else:
                chunk = backend.tail(rec.run_dir, offset=offset, timeout_s=LOOK_TIMEOUT_S)
        except TransportError as exc:
            yield exc
            time.sleep(backoff_s)
            backoff_s = min(max_backoff_s, backoff_s * 2)
            continue
        backoff_s = poll_s
        if chunk.data:
            yield chunk.data
            quiet_since = time.monotonic()
        offset = chunk.offset
        if chunk.data:
            continue
        if chunk.ended or final is not None:  # nothing more will come
            return final or status(session, [rec.run_id])[0]
        if time.monotonic() - quiet_since >= probe_every_s:
            quiet_since = time.monotonic()
            look = status(session, [rec.run_id])[0]
            if look.ended and not look.stale:
                final = look  # one more tail drains what it wrote before it ended
                continue
        time.sleep(poll_s)


def _next_of_name(session: Session, rec: RunRecord, poll_s: float) -> RunRecord:
    """The next run launched under ``rec``'s name on its target (waits for one)."""
    while True:
        newer = [
            r
            for r in session.store.all()
            if r.name == rec.name and r.target == rec.target and r.created_at > rec.created_at
        ]
        if newer:
            return min(newer, key=lambda r: r.created_at)
        time.sleep(poll_s)
