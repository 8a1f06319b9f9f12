"""A run's status as ``status`` reports it: the box's records merged with the registry's.

:class:`RunStatus` is what flows from the lifecycle to the CLI, the daemon and the demo;
``to_json()`` is the ``status --json`` shape of DESIGN.md, key for key. The state is a
:class:`~outlive.wire.State`; a run that died is explained by a :class:`Diagnosis`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from outlive._shapes import replace, shape
from outlive.wire import DIAGNOSIS_CAUSES, RunProbe, State

# The keys every status row has, in this order (DESIGN.md's contract).
STATUS_KEYS = (
    "run_id",
    "name",
    "target",
    "state",
    "exit_code",
    "signal",
    "pid",
    "supervisor_pid",
    "started_at",
    "ended_at",
    "heartbeat_age_s",
    "progress",
    "diagnosis",
)
# Shown only when the box reported them.
EXTRA_KEYS = (
    "max_rss_bytes",
    "warning",
    "error",
    "cancel_requested",
    "restarts",
    "slurm",
    "kubernetes",
    "kaggle",
)


class SlurmView(TypedDict, total=False):
    """The scheduler's view of a Slurm run, as the box's agent reports it."""

    job_id: str | None
    state: str | None  # squeue/sacct's own word: PENDING, RUNNING, REQUEUED, TIMEOUT, ...
    reason: str | None
    restarts: int
    node: str | None
    time_limit: str | None
    attempts: int
    save_s: float | None  # the longest TERM → exit measured so far (sizes the signal lead)
    error: str  # squeue/sacct could not be asked


class KubernetesView(TypedDict, total=False):
    """The API server's view of a Kubernetes run (one ``kubectl get jobs,pods`` per namespace)."""

    namespace: str
    job: str
    pod: str | None  # the newest pod of the Job
    phase: str | None  # that pod's phase: Pending, Running, Succeeded, Failed
    reason: str | None  # why it waits or ended: Unschedulable, OOMKilled, DeadlineExceeded, ...
    message: str | None  # the API's own words for it
    restarts: int  # pods of the Job before the newest
    attempts: int
    save_s: float | None  # the longest TERM → exit measured so far (sizes the grace)


class KaggleView(TypedDict, total=False):
    """A run on Kaggle: its kernel and the chain of versions so far (one per session)."""

    ref: str  # owner/slug
    versions: list[dict[str, Any]]  # {"number", "status", "failure", "outcome"} in push order


@shape(frozen=True)
class Diagnosis:
    """Why a run ended without an exit record, or died by a signal: the cause and its evidence."""

    cause: str  # one of DIAGNOSIS_CAUSES
    evidence: tuple[str, ...] = ()
    gotchas: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, doc: object) -> Diagnosis | None:
        if not isinstance(doc, dict):
            return None
        cause = str(doc.get("cause"))
        return cls(
            cause=cause if cause in DIAGNOSIS_CAUSES else "unknown",
            evidence=tuple(str(e) for e in doc.get("evidence") or ()),
            gotchas=tuple(str(g) for g in doc.get("gotchas") or ()),
        )

    def to_json(self) -> dict[str, object]:
        return {"cause": self.cause, "evidence": list(self.evidence), "gotchas": list(self.gotchas)}


@shape(frozen=True)
class RunStatus:
    """One run, as the last look saw it."""

    run_id: str
    name: str
    target: str
    state: State
    command: tuple[str, ...] = ()
    run_dir: str = ""
    ckpt_dir: str = ""
    created_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    pid: int | None = None
    supervisor_pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat_age_s: float | None = None
    progress: Mapping[str, object] | None = None  # the job's own progress() record, any JSON
    diagnosis: Diagnosis | None = None
    # reported by the box only when they apply
    max_rss_bytes: int | None = None
    warning: str | None = None
    error: str | None = None
    cancel_requested: bool | None = None
    restarts: int | None = None
    slurm: SlurmView | None = None
    kubernetes: KubernetesView | None = None
    kaggle: KaggleView | None = None
    # the box did not answer: this is the registry's last-seen state
    stale: bool = False
    unreachable: str | None = None

    @property
    def ended(self) -> bool:
        return self.state.ended

    def to_json(self) -> dict[str, object]:
        """The ``status --json`` row (DESIGN.md), key for key and in this order."""
        doc: dict[str, object] = {k: getattr(self, k) for k in STATUS_KEYS}
        doc["state"] = self.state.value
        doc["diagnosis"] = self.diagnosis.to_json() if self.diagnosis else None
        doc.update(
            command=list(self.command),
            run_dir=self.run_dir,
            ckpt_dir=self.ckpt_dir,
            created_at=self.created_at,
        )
        if self.stale:
            doc.update(stale=True, unreachable=self.unreachable)
        for k in EXTRA_KEYS:  # the box reported them
            if getattr(self, k) is not None:
                doc[k] = getattr(self, k)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunStatus:
        """A row as ``to_json`` wrote it (the registry's cache of the last look); built in one
        go, as a look at a long-lived project reads a thousand of them."""
        fields: dict[str, Any] = {k: doc.get(k) for k in (*_REPORTED_KEYS, *EXTRA_KEYS)}
        fields.update(
            run_id=str(doc.get("run_id")),
            name=str(doc.get("name")),
            target=str(doc.get("target")),
            state=State.parse(doc.get("state")) or State.VANISHED,
            command=tuple(doc.get("command") or ()),
            run_dir=str(doc.get("run_dir") or ""),
            ckpt_dir=str(doc.get("ckpt_dir") or ""),
            created_at=doc.get("created_at"),
            diagnosis=Diagnosis.from_json(doc.get("diagnosis")),
        )
        return cls(**fields)


# What a probe reports besides the run's identity (which the registry knows).
_REPORTED_KEYS = tuple(k for k in STATUS_KEYS if k not in ("run_id", "name", "target", "state"))


def _with_reported(st: RunStatus, doc: Mapping[str, Any], *, extras: bool = True) -> RunStatus:
    """``st`` with the fields a probe (or a cached row) reports; the extras only if asked."""
    fields = {k: doc.get(k) for k in (*_REPORTED_KEYS, *(EXTRA_KEYS if extras else ()))}
    fields["diagnosis"] = Diagnosis.from_json(doc.get("diagnosis"))
    return replace(st, **fields)


def merged(
    probe: RunProbe,
    *,
    run_id: str,
    name: str,
    target: str,
    command: list[str],
    run_dir: str,
    ckpt_dir: str,
    created_at: float,
) -> RunStatus:
    """The box's answer for one run, completed by what the registry knows about it."""
    state = State.parse(probe.state)
    base = RunStatus(
        run_id=run_id,
        name=name,
        target=target,
        state=state or State.VANISHED,
        command=tuple(command),
        run_dir=run_dir,
        ckpt_dir=ckpt_dir,
        created_at=created_at,
    )
    st = _with_reported(base, probe.to_json())
    if state is None:  # the run's records on the box are unreadable: say so, never guess
        why = probe.error or "the run's records on the box are unreadable"
        st = replace(st, diagnosis=Diagnosis(cause="unknown", evidence=(why,), gotchas=("U3",)))
    return st


def stale(
    last: RunStatus | None,
    *,
    run_id: str,
    name: str,
    target: str,
    state: str,
    command: list[str],
    run_dir: str,
    ckpt_dir: str,
    created_at: float,
    error: str,
) -> RunStatus:
    """What the registry last saw of a run whose box did not answer (GEN8, U3): never dead."""
    base = RunStatus(
        run_id=run_id,
        name=name,
        target=target,
        state=State.parse(state) or State.PENDING,
        command=tuple(command),
        run_dir=run_dir,
        ckpt_dir=ckpt_dir,
        created_at=created_at,
        stale=True,
        unreachable=error,
    )
    if last is None:
        return base
    return replace(
        last,
        run_id=run_id,
        name=name,
        target=target,
        state=base.state,
        command=base.command,
        run_dir=run_dir,
        ckpt_dir=ckpt_dir,
        created_at=created_at,
        stale=True,
        unreachable=error,
        **dict.fromkeys(EXTRA_KEYS),  # only a fresh look shows what the box reported
    )
