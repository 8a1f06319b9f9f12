"""The run lifecycle on any target: launch, status (one probe per target), cancel, log tails.

Each function takes the command's :class:`~outlive.session.Session` and calls the target's
backend through its interface, never asking which platform it is. The box's records (run.json,
launch.json, exit.json) are the truth; the registry caches what the last look saw.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from outlive import run_status, wire
from outlive._shapes import shape
from outlive.backends.base import ArrayPlan, CancelReply, Launched, LaunchReply
from outlive.errors import BoxError, ConfigError, OutliveError, TransportError, UsageError
from outlive.naming import NameBusy, check_command, check_name, default_name, new_run_id
from outlive.run_status import RunStatus
from outlive.store import RegistryError, RunRecord

if TYPE_CHECKING:
    from outlive.backends.base import Backend
    from outlive.config import Target
    from outlive.session import Session

# A look must be cheap and must not hang on a dead link: past this, the target is unreachable.
LOOK_TIMEOUT_S = 15.0
# A journaled launch whose run dir a look does not find on the box is shown as pending this long
# after its row was last written (the request may still be on its way), then forgotten.
JOURNAL_GRACE_S = 120.0
_BUSY_STATES = (wire.State.PENDING, wire.State.RUNNING, wire.State.REQUEUED)


def box_run_dir(workdir: str, run_id: str) -> str:
    """Where the agent puts a run's directory: fixed by the workdir and the run id, so a run whose
    launch reply never came can still be looked up."""
    return "/".join((workdir.rstrip("/") or "/", wire.STATE_DIRNAME, wire.RUNS_DIRNAME, run_id))


def launch_request(
    session: Session,
    target: Target,
    backend: Backend,
    run_id: str,
    name: str,
    command: list[str],
    detach: str | None,
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
        project_id=session.project_id(create=True),
    )


@contextmanager
def launch_registry(session: Session) -> Iterator[None]:
    """The registry held open for one launch (each connection's close checkpoints the WAL, an
    fsync of its own); a registry that cannot be opened means nothing was launched."""
    try:
        session.store.__enter__()
    except RegistryError as exc:
        raise RegistryError(f"nothing was launched: {exc}") from None
    try:
        yield
    finally:
        session.store.__exit__(None, None, None)


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
    try:
        backend = session.backend(target)  # may write the local agent's bundle
    except OSError as exc:
        raise local_disk_error(exc, "nothing was launched") from None
    request = launch_request(session, target, backend, new_run_id(), run_name, command, detach)
    cells = [(request.run_id, run_name, command)]
    _journal(session, backend, request, cells)  # before anything is pushed or sent

    def send(req: wire.LaunchRequest) -> LaunchReply:
        _journal(session, None, req, cells)  # re-stamped: the request leaves now
        return backend.launch(req)

    try:
        reply = launch_deployed(session, target, backend, send, request)
    except OSError as exc:
        _settle_failed(session, backend, request, cells, exc)
        where = f"run {request.run_id} may not have started; `outlive status` will tell"
        raise local_disk_error(exc, where) from None
    except BaseException as exc:
        _settle_failed(session, backend, request, cells, exc)
        raise
    return _record(session, request, reply, state=wire.State.RUNNING)


def local_disk_error(exc: OSError, what: str) -> OutliveError:
    """An OSError on this machine during a launch (a full disk, a read-only directory) as one
    sentence."""
    where = f" writing {exc.filename}" if exc.filename else ""
    fix = "free space on that disk" if exc.errno == 28 else "check that path"
    return OutliveError(f"{what}: {exc.strerror or exc}{where}; {fix} and retry")


def check_name_free(session: Session, target: str, backend: Backend, name: str) -> None:
    """Refuse a second live run of ``name`` on ``target`` (the box checks again under a lock, so
    two clients racing get one winner). What the registry last saw is re-checked on the box."""
    held = [r for r in session.store.live_by_name(name, target) if not r.journaled]
    if not held:
        return
    try:
        probes = backend.probe([r.run_dir for r in held], timeout_s=LOOK_TIMEOUT_S)
    except (TransportError, ConfigError):
        return  # the box decides, under its lock
    for rec, box in zip(held, probes, strict=True):
        state = wire.State.parse(box.state)
        if state in _BUSY_STATES:
            raise NameBusy(name_busy_message(name, rec.run_id, state.value if state else "live"))


def name_busy_message(name: str, run_id: str, state: str) -> str:
    return (
        f"run name {name!r} is held by run {run_id} ({state}) on this target; cancel it with "
        f"`outlive cancel {run_id}` or choose another --name"
    )


def _journal(
    session: Session,
    backend: Backend | None,
    request: wire.LaunchRequest,
    cells: Sequence[tuple[str, str, list[str]]],
) -> None:
    """Record the launch before it is sent (with a ``backend``: first check that no live run
    holds a cell's name); a registry that cannot be read or written stops the launch here, with
    nothing sent."""
    workdir = request.workdir or "."
    durable = request.durable or f"{workdir.rstrip('/')}/{wire.STATE_DIRNAME}/durable"
    try:
        if backend is not None:
            for _run_id, name, _command in cells:
                check_name_free(session, request.target or "", backend, name)
        for run_id, name, command in cells:
            session.store.journal(
                RunRecord(
                    run_id=run_id,
                    name=name,
                    target=request.target or "",
                    command=command,
                    run_dir=box_run_dir(workdir, run_id),
                    ckpt_dir=f"{durable.rstrip('/')}/{name}",
                    created_at=request.created_at or time.time(),
                )
            )
    except RegistryError as exc:
        raise RegistryError(f"nothing was launched: {exc}") from None


def _settle_failed(
    session: Session,
    backend: Backend,
    request: wire.LaunchRequest,
    cells: Sequence[tuple[str, str, list[str]]],
    exc: BaseException,
) -> None:
    """A launch that raised: when the box answered (it refused), ask it whether the run dirs
    exist and forget the journaled rows it never created; on a cut link keep them, and the next
    look settles them (found on the box, or forgotten after JOURNAL_GRACE_S)."""
    if not isinstance(exc, OutliveError) or isinstance(exc, TransportError):
        return
    ids = [c[0] for c in cells]
    dirs = [box_run_dir(request.workdir or ".", run_id) for run_id in ids]
    try:
        if isinstance(exc, BoxError):
            probes = backend.probe(dirs, timeout_s=LOOK_TIMEOUT_S)
            ids = [i for i, p in zip(ids, probes, strict=True) if wire.State.parse(p.state) is None]
        session.store.forget(ids)
    except OutliveError:
        pass  # the next look settles them


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
    request = launch_request(
        session, target, backend, new_run_id(), plan.names[0], commands[0], None
    )
    cells = [
        (f"{request.run_id}-{i}", plan.names[i], list(plan.commands[i]))
        for i in range(len(plan.names))
    ]
    _journal(session, backend, request, cells)

    def send(req: wire.LaunchRequest) -> list[LaunchReply]:
        _journal(session, None, req, cells)
        return backend.launch_array(req, plan)

    try:
        replies = launch_deployed(session, target, backend, send, request)
    except BaseException as exc:
        _settle_failed(session, backend, request, cells, exc)
        raise
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
    try:
        session.store.confirm(rec.run_id, rec.run_dir, rec.ckpt_dir, rec.state)
    except RegistryError as exc:
        # The journaled row stays, so a look still finds the run on the box.
        raise RegistryError(
            f"run {rec.run_id} was launched, but {exc}; `outlive status` will pick it up"
        ) from None
    from outlive.lifecycle.software import missing_program_warnings

    durable = request.durable or f"{request.workdir.rstrip('/')}/{wire.STATE_DIRNAME}/durable"
    warnings = (
        *reply.warnings,
        *missing_program_warnings(rec.target, durable, reply.missing_programs),
    )
    return Launched(
        rec.run_id, rec.name, rec.target, rec.run_dir, rec.ckpt_dir, reply.pid, warnings
    )


def read_queue_file(path: Path) -> list[list[str]]:
    """One command per line (shell words, as typed), blank lines and ``#`` comments skipped."""
    import shlex

    from outlive._textfile import read_text

    try:
        lines = read_text(path, "queue file").splitlines()
    except OSError as exc:
        why = exc.strerror or exc
        raise UsageError(f"cannot read queue file {path} ({why}); check the path") from None
    except UnicodeDecodeError:
        raise UsageError(f"queue file {path} is not UTF-8 text; save it as UTF-8") from None
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


def status(
    session: Session,
    refs: Iterable[str] = (),
    *,
    elsewhere: list[Elsewhere] | None = None,
    discover: bool = False,
    unseen: list[tuple[str, str]] | None = None,
) -> list[RunStatus]:
    """The state of the given runs (all known runs if none), one probe per target. A look at
    all runs also adopts the runs each box holds under the target's workdir that the registry
    does not know (a launch whose record was lost), and settles journaled launches. Runs found
    there that another copy of the project launched (another project id) are not adopted;
    ``elsewhere`` gets how many there are, per target and project id, to say so.
    ``discover`` (a look at all runs only): the targets with no run known here are looked at
    too, for a copy of the project whose registry is new or lost; ``unseen`` gets (target,
    why) for each of those that could not be looked at."""
    with session.store as store:
        refs = list(refs)
        records = [store.resolve(r) for r in refs] if refs else store.all()
        by_target: dict[str, list[RunRecord]] = {}
        for rec in records:
            by_target.setdefault(rec.target, []).append(rec)
        discovered = set()
        if discover and not refs:
            discovered = {name for name in session.cfg.targets if name not in by_target}
            for name in sorted(discovered):
                by_target[name] = []
        # Read here, not in the probing threads (the store's connection is this thread's).
        stamps = store.journaled_at([r.run_id for r in records if r.journaled])
        known = set() if refs else {r.run_id for r in records}
        results: dict[str, RunStatus] = {}
        looks: Iterable[_Look]

        def one(item: tuple[str, list[RunRecord]]) -> _Look:
            return _probe_target(session, *item, stamps=stamps, known=known, adopt=not refs)

        if len(by_target) == 1:
            looks = [one(next(iter(by_target.items())))]
        elif by_target:
            from concurrent.futures import ThreadPoolExecutor

            # One thread per target (a cut link holds its thread until the look timeout).
            with ThreadPoolExecutor(max_workers=min(32, len(by_target))) as pool:
                looks = list(pool.map(one, by_target.items()))
        else:
            looks = []
        adopted: list[RunRecord] = []
        forgotten: list[str] = []
        for look in looks:
            results.update(look.results)
            adopted += look.adopted
            forgotten += look.forgotten
            if elsewhere is not None:
                elsewhere += look.elsewhere
            if unseen is not None and look.unseen is not None and look.unseen[0] in discovered:
                unseen.append(look.unseen)  # a target with runs says it in their stale rows
        for rec in adopted:
            store.journal(rec)
        store.forget(forgotten)
        out = [results[rec.run_id] for rec in records if rec.run_id in results]
        out += [results[rec.run_id] for rec in adopted]
        skip = _unconfirmed(looks) | {run_id for look in looks for run_id in look.cached}
        seen = [st for st in out if not st.stale and st.run_id not in skip]
        for look in looks:
            for run_id, (run_dir, ckpt_dir, state) in look.confirmed.items():
                store.confirm(run_id, run_dir, ckpt_dir, state)
        store.update_many(seen, {r.run_id: r.status_json for r in records if not r.journaled})
    return out


def _unconfirmed(looks: Iterable[_Look]) -> set[str]:
    return {run_id for look in looks for run_id in look.unconfirmed}


class Elsewhere(NamedTuple):
    """Runs under a target's workdir launched by another copy of this project (a clone on
    another machine, or a ``.outlive/`` lost since), which a look does not adopt."""

    target: str
    workdir: str
    project_id: str
    runs: int
    ours: str | None  # this copy's project id (None: it has launched nothing yet)

    def sentence(self) -> str:
        said = (
            f"{self.runs} run(s) under {self.workdir} on target {self.target!r} were launched "
            f"by another copy of this project (project id {self.project_id[:8]}…, kept in that "
            "copy's .outlive/project-id) and are not shown here"
        )
        if self.ours is None:
            said += (
                "; to follow them from this copy, put that id in its .outlive/project-id and "
                "run `outlive status --discover`"
            )
        return said


class _Look:
    """What one target's probe said, and what the registry should learn from it."""

    def __init__(self) -> None:
        self.results: dict[str, RunStatus] = {}
        self.adopted: list[RunRecord] = []  # on the box, unknown to the registry
        self.forgotten: list[str] = []  # journaled, never reached the box
        self.unconfirmed: set[str] = set()  # journaled, not (yet) on the box: shown pending
        self.confirmed: dict[str, tuple[str, str, str]] = {}  # journaled, found on the box
        self.cached: set[str] = set()  # ended for good: the registry's row is the answer
        self.elsewhere: list[Elsewhere] = []  # another copy's runs, not adopted
        self.unseen: tuple[str, str] | None = None  # (target, why) it could not be looked at


def _probe_target(
    session: Session,
    target_name: str,
    records: list[RunRecord],
    *,
    stamps: dict[str, float],
    known: set[str],
    adopt: bool = False,
) -> _Look:
    look = _Look()
    try:
        backend = session.backend(target_name)
        if backend.ended_is_final:
            # Runs a look saw end (their exit record is final) are not asked about again.
            for rec in records:
                cached = rec.status if _final(rec) else None
                if cached is not None:
                    look.results[rec.run_id] = cached
                    look.cached.add(rec.run_id)
            records = [r for r in records if r.run_id not in look.results]
        if adopt:
            workdir = session.target(target_name).placement.workdir
            probes, found = backend.look(
                [r.run_dir for r in records],
                workdir,
                timeout_s=LOOK_TIMEOUT_S,
                known=[look.results[k].run_dir for k in look.results],
            )
        elif records:
            probes, found = (
                backend.probe([r.run_dir for r in records], timeout_s=LOOK_TIMEOUT_S),
                [],
            )
        else:
            probes, found = [], []
    except (TransportError, ConfigError) as exc:
        # Unreachable is not dead: report what we last saw, marked stale (GEN8, U3).
        look.results.update({r.run_id: _stale(r, str(exc)) for r in records})
        look.unseen = (target_name, str(exc))
        return look
    now = time.time()
    for rec, box in zip(records, probes, strict=True):
        if rec.journaled and wire.State.parse(box.state) is None:
            if now - stamps.get(rec.run_id, now) > JOURNAL_GRACE_S:
                look.forgotten.append(rec.run_id)  # the launch never reached the box
                continue
            look.unconfirmed.add(rec.run_id)
            look.results[rec.run_id] = _journaled(rec)
            continue
        if rec.journaled:
            state = wire.State.parse(box.state) or wire.State.PENDING
            look.confirmed[rec.run_id] = (box.run_dir, box.ckpt_dir or rec.ckpt_dir, state.value)
            rec = replace(rec, run_dir=box.run_dir, ckpt_dir=box.ckpt_dir or rec.ckpt_dir)
        look.results[rec.run_id] = _merge(rec, box)
    ours = session.project_id() if found else None
    others: dict[str, int] = {}
    for run in found:
        if run.run_id in known or run.target not in (None, target_name):
            continue
        if run.project_id is not None and run.project_id != ours:
            # Another copy's (a clone elsewhere, a lost .outlive/), or another project of the
            # same name and workdir: never adopted, but counted, so the look can say so.
            others[run.project_id] = others.get(run.project_id, 0) + 1
            continue
        rec = RunRecord(
            run_id=run.run_id,
            name=run.name,
            target=target_name,
            command=run.command,
            run_dir=run.run_dir,
            ckpt_dir=run.ckpt_dir,
            created_at=run.created_at,
        )
        look.adopted.append(rec)
        state = wire.State.parse(run.probe.state) or wire.State.PENDING
        look.confirmed[rec.run_id] = (rec.run_dir, rec.ckpt_dir, state.value)
        look.results[rec.run_id] = _merge(rec, run.probe)
    if others:
        workdir = session.target(target_name).placement.workdir
        look.elsewhere = [
            Elsewhere(target_name, workdir, pid, n, ours) for pid, n in sorted(others.items())
        ]
    return look


_FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})  # an exit record says so


def _final(rec: RunRecord) -> bool:
    return not rec.journaled and rec.state in _FINAL_STATES


def _journaled(rec: RunRecord) -> RunStatus:
    """A launch journaled but not yet seen on its box: pending, as the registry knows it."""
    return RunStatus(
        run_id=rec.run_id,
        name=rec.name,
        target=rec.target,
        state=wire.State.PENDING,
        command=tuple(rec.command),
        run_dir=rec.run_dir,
        ckpt_dir=rec.ckpt_dir,
        created_at=rec.created_at,
    )


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
        problems = _deploy_problems(session, target, result.manifest)
        if problems and result.method == "rsync":
            # a file changed on the box with its size and mtime kept passes rsync's quick
            # check: push once more comparing contents
            result = push(session, target, checksum=True)
            problems = _deploy_problems(session, target, result.manifest)
    return {
        "target": target.name,
        "files": result.files,
        "size_bytes": result.size_bytes,
        "method": result.method,
        "verified": not problems,
        "problems": problems,
        "warnings": list(result.warnings),
    }


def _deploy_problems(
    session: Session, target: Target, manifest: dict[str, dict[str, object]]
) -> list[str]:
    """How the box's copy of the project differs from ``manifest`` (none: it matches)."""
    reply = session.agent(target).call(
        "verify_deploy", {"workdir": target.placement.workdir, "manifest": manifest}
    )
    return list(reply["problems"])


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
    _check_launched_here(target, rec)
    result = session.backend(target).cancel(rec.run_dir, target.policy.kill_grace_s)
    result["run_id"], result["name"] = rec.run_id, rec.name
    return result


def _check_launched_here(target: Target, rec: RunRecord) -> None:
    """A local run's directory is under this project's own: a registry copied with the project
    (``cp -a``) names the original's run dirs, whose jobs are not this copy's to signal."""
    if not target.is_local:
        return  # a box's workdir is the same from every copy of the project
    import os

    here = os.path.join(target.placement.workdir, wire.STATE_DIRNAME, wire.RUNS_DIRNAME)
    if os.path.normpath(os.path.dirname(rec.run_dir)) == os.path.normpath(here):
        return
    origin = os.path.dirname(os.path.dirname(os.path.dirname(rec.run_dir)))
    raise UsageError(
        f"run {rec.name!r} ({rec.run_id}) was launched from the project in {origin}, not this "
        f"one in {target.placement.workdir} (its registry came with a copy of that project); "
        "cancel it from there"
    )


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
