"""Ask a target's agent for facts and turn them into reports: ``up`` and ``doctor``."""

from __future__ import annotations

from typing import cast

from outlive.diagnose.audit import AuditReport, audit_report
from outlive.diagnose.doctor import DoctorReport, doctor_report
from outlive.diagnose.facts import AuditFacts, DoctorFacts
from outlive.session import Session

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
    """Why run ``ref`` died or is slow: one agent call on its target, then the ladder and checks."""
    rec = session.store.resolve(ref)
    agent = session.agent(rec.target)
    facts = agent.call("doctor", {"run_dir": rec.run_dir}, timeout_s=DOCTOR_TIMEOUT_S)
    return doctor_report(rec.run_id, cast(DoctorFacts, facts))
