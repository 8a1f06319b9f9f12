"""The structured output of each MCP tool: the CLI's ``--json`` document, key for key, as a
TypedDict the SDK turns into the tool's declared output schema. Each shape names the keys every
answer has; nested objects stay open (``extra="allow"``) so a key the CLI adds later is kept,
not dropped by the SDK's validation."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import NotRequired, TypedDict

_OPEN = ConfigDict(extra="allow")


@with_config(_OPEN)
class TargetRow(TypedDict):
    name: str
    profile: str
    kind: str
    host: str | None
    workdir: str | None
    durable: str | None


@with_config(_OPEN)
class TargetsOut(TypedDict):
    """``outlive targets --json``."""

    targets: list[TargetRow]
    config: str | None


@with_config(_OPEN)
class ClockRow(TypedDict):
    """A danger clock of a profile, shown before anything else."""

    profile: str
    name: str
    what_happens: str
    duration_s: float | None
    gotchas: list[str]


@with_config(_OPEN)
class ProfilesOut(TypedDict):
    """``outlive profiles --json``, with every profile's danger clocks lifted to the front."""

    danger_clocks: list[ClockRow]
    profiles: list[dict[str, Any]]


@with_config(_OPEN)
class CheckRow(TypedDict):
    name: str
    status: str
    detail: str
    gotchas: list[str]


@with_config(_OPEN)
class UpOut(TypedDict):
    """``outlive up TARGET --json``."""

    target: str
    checks: list[CheckRow]
    ok: bool


@with_config(_OPEN)
class RunOut(TypedDict):
    """``outlive run --json``."""

    run_id: str
    name: str
    target: str
    warnings: list[str]


@with_config(_OPEN)
class Diagnosis(TypedDict):
    cause: str
    evidence: list[str]
    gotchas: list[str]


@with_config(_OPEN)
class StatusRow(TypedDict):
    """One run of ``outlive status --json`` (DESIGN.md's keys)."""

    run_id: str
    name: str
    target: str
    state: str
    exit_code: int | None
    signal: int | str | None
    pid: int | None
    supervisor_pid: int | None
    started_at: float | None
    ended_at: float | None
    heartbeat_age_s: float | None
    progress: Any
    diagnosis: Diagnosis | None


@with_config(_OPEN)
class StatusOut(TypedDict):
    """``outlive status --json``."""

    runs: list[StatusRow]


@with_config(_OPEN)
class LogsOut(TypedDict):
    """The bounded tail of a run's log (``outlive logs RUN -n N``, as JSON)."""

    run: str
    lines: int
    text: str
    truncated: bool


@with_config(_OPEN)
class MatchRow(TypedDict):
    id: str
    line: int
    text: str
    title: str
    fix: NotRequired[str]


@with_config(_OPEN)
class ExplainOut(TypedDict):
    """``outlive explain --json``: most specific first."""

    matches: list[MatchRow]


@with_config(_OPEN)
class DoctorOut(TypedDict):
    """``outlive doctor RUN --json``."""

    run_id: str
    state: str
    diagnosis: Diagnosis | None
    checks: list[CheckRow]
    could_not_check: list[str]


@with_config(_OPEN)
class VerifyOut(TypedDict):
    """``outlive verify DIR --json`` (also the ``verify`` part of a pull)."""

    ok: bool
    dir: str
    manifest_sha256: str
    files: int
    checkpoints_loaded: int
    problems: list[str]


@with_config(_OPEN)
class PullOut(TypedDict):
    """``outlive pull RUN --json``: ``ok`` only when the copy verified by hash and by load."""

    ok: bool
    run_id: str
    name: str
    dest: str
    files: int
    size_bytes: int
    manifest_sha256: str | None
    transfer: dict[str, Any]
    verify: VerifyOut


class CloudAuditOut(TypedDict):
    """``outlive cloud audit --json``: each item ``provider, kind, id, name, state,
    usd_per_hour, why``, costliest first, and what they bill together per month."""

    items: list[dict[str, Any]]
    usd_per_month: float


@with_config(_OPEN)
class SweepStatusOut(TypedDict):
    """``outlive sweep status --json``: each item ``key, name, params, state, target, run_id,
    run_state, unreachable, step, metric, restarts, failures, note``; the counts by state; the
    best items by a metric (None when no item reports one)."""

    sweep: str
    source: str
    items: list[dict[str, Any]]
    summary: dict[str, int]
    best: dict[str, Any] | None


@with_config(_OPEN)
class DownOut(TypedDict):
    """``outlive down TARGET --json`` plus the two-step confirmation: ``token`` is given only
    when the gate would pass once confirmed; a second call with it returns the plan, or with
    ``execute`` calls the meter-stop verb: ``cloud`` is what the target's pod or machine bills
    now (None without a provider), ``executed`` what the verb did (None unless it ran)."""

    target: str
    profile: str
    reachable: bool
    runs: list[dict[str, Any]]
    lost_if_abandoned: list[dict[str, Any]]
    teardown: dict[str, Any]
    allowed: bool
    refused: str | None
    confirmed: bool
    plan: list[dict[str, Any]] | None
    cloud: dict[str, Any] | None
    executed: dict[str, Any] | None
    token: str | None
    token_expires_in_s: float | None
    next_step: str
