"""A run's status as ``status`` reports it: the box's records merged with the registry's.

:class:`RunStatus` is what flows from the lifecycle to the CLI, the daemon and the demo;
``to_json()`` is the ``status --json`` shape of DESIGN.md, key for key. The state is a
:class:`~outlive.wire.State`; a run that died is explained by a :class:`Diagnosis`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
EXTRA_KEYS = ("max_rss_bytes", "warning", "error", "cancel_requested", "restarts", "slurm")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
    progress: dict[str, Any] | None = None  # the job's own progress() record, any JSON
    diagnosis: Diagnosis | None = None
    # reported by the box only when they apply
    max_rss_bytes: int | None = None
    warning: str | None = None
    error: str | None = None
    cancel_requested: bool | None = None
    restarts: int | None = None
    slurm: dict[str, Any] | None = None  # the scheduler's view: job id, state, reason, save_s
    # the box did not answer: this is the registry's last-seen state
    stale: bool = False
    unreachable: str | None = None
    _extra_keys: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def ended(self) -> bool:
        return self.state.ended

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {k: getattr(self, k) for k in STATUS_KEYS}
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
        for k in self._extra_keys:
            doc[k] = getattr(self, k)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunStatus:
        """A row as ``to_json`` wrote it (the registry's cache of the last look)."""
        return cls(
            run_id=str(doc.get("run_id")),
            name=str(doc.get("name")),
            target=str(doc.get("target")),
            state=State.parse(doc.get("state")) or State.VANISHED,
            command=tuple(doc.get("command") or ()),
            run_dir=str(doc.get("run_dir") or ""),
            ckpt_dir=str(doc.get("ckpt_dir") or ""),
            created_at=doc.get("created_at"),
            **_reported(doc),
        )


def _reported(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields a probe (or a cached row) reports, typed, with which extras it carried."""
    out: dict[str, Any] = {
        k: doc.get(k) for k in STATUS_KEYS if k not in ("run_id", "name", "target", "state")
    }
    out["diagnosis"] = Diagnosis.from_json(doc.get("diagnosis"))
    extras = tuple(k for k in EXTRA_KEYS if doc.get(k) is not None)
    out.update({k: doc[k] for k in extras})
    out["_extra_keys"] = extras
    return out


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
    reported = _reported(probe.to_json())
    state = State.parse(probe.state)
    if state is None:  # the run's records on the box are unreadable: say so, never guess
        state = State.VANISHED
        reported["diagnosis"] = Diagnosis(
            cause="unknown",
            evidence=(probe.error or "the run's records on the box are unreadable",),
            gotchas=("U3",),
        )
    return RunStatus(
        run_id=run_id,
        name=name,
        target=target,
        state=state,
        command=tuple(command),
        run_dir=run_dir,
        ckpt_dir=ckpt_dir,
        created_at=created_at,
        **reported,
    )


def stale(
    last: dict[str, Any] | None,
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
    reported = _reported(last or {})
    reported["_extra_keys"] = ()
    for k in EXTRA_KEYS:
        reported.pop(k, None)
    return RunStatus(
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
        **reported,
    )
