"""Ask a target's agent for facts and turn them into reports: ``up`` and ``doctor``."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, cast

from outlive.diagnose.audit import AuditReport, audit_report
from outlive.diagnose.doctor import DoctorReport, doctor_report
from outlive.diagnose.facts import AuditFacts, DoctorFacts
from outlive.session import Session

if TYPE_CHECKING:
    from outlive.gotchas import Match

__all__ = ["AUDIT_TIMEOUT_S", "DOCTOR_TIMEOUT_S", "run_audit", "run_doctor"]


# The agent bounds each of its commands (nvidia-smi 10 s, the torch probe 30 s, dmesg 10 s,
# dmon 15 s, the /proc scan 5 s); these leave room for all of them plus the connection.
AUDIT_TIMEOUT_S = 150.0
DOCTOR_TIMEOUT_S = 150.0


def run_audit(session: Session, target_name: str, *, probe_torch: bool = True) -> AuditReport:
    """The Phase-0 audit of ``target_name``: one agent call, then the checks."""
    target = session.target(target_name)
    request = {
        "paths": {"workdir": target.placement.workdir, "durable": target.placement.durable},
        "env": dict(target.policy.env),
        "torch": probe_torch,
    }
    facts = session.agent(target).call("audit", request, timeout_s=AUDIT_TIMEOUT_S)
    return audit_report(target.name, cast(AuditFacts, facts))


def run_doctor(session: Session, ref: str) -> DoctorReport:
    """Why run ``ref`` died or is slow: the run's own log explained against the catalog, one
    agent call on its target for the box facts, then the ladder, the checks and the verdict."""
    rec = session.store.resolve(ref)
    agent = session.agent(rec.target)
    facts = agent.call("doctor", {"run_dir": rec.run_dir}, timeout_s=DOCTOR_TIMEOUT_S)
    matches, why = _explain_log(session, ref)
    return doctor_report(rec.run_id, cast(DoctorFacts, facts), matches, why)


def _explain_log(session: Session, ref: str) -> tuple[list[Match] | None, str | None]:
    """The run's log matched against the catalog, or None and the reason it could not be read."""
    from outlive.errors import OutliveError
    from outlive.gotchas import explain_stream
    from outlive.lifecycle.runs import RemoteLog

    try:
        log = RemoteLog(session, ref)
        return explain_stream(cast(BinaryIO, log), platform=log.target.profile), None
    except (OutliveError, OSError) as exc:
        return None, f"could not be read ({exc})"
