"""``outlive up``: the Phase-0 audit of a box, from the agent's ``audit`` facts to checks."""

from __future__ import annotations

from typing import TypedDict

from outlive.diagnose.cuda import triangle_check
from outlive.diagnose.disk import disk_checks
from outlive.diagnose.facts import AuditFacts
from outlive.diagnose.gpu import (
    clocks_check,
    presence_check,
    read_gpu,
    throttle_check,
    vram_check,
)
from outlive.diagnose.model import Check, CheckJson, Status
from outlive.diagnose.system import (
    caches_check,
    cpu_quota_check,
    memory_check,
    python_check,
    tool_checks,
)

__all__ = ["AuditReport", "audit_checks", "audit_report"]


class AuditReport(TypedDict):
    """The ``up --json`` document; ``ok`` is False on any FAIL."""

    target: str
    checks: list[CheckJson]
    ok: bool


def audit_checks(facts: AuditFacts) -> list[Check]:
    """Every Phase-0 check, in the order a reader wants them: interpreter, GPU, disks, limits,
    tools."""
    view = read_gpu(facts.get("gpu"))
    host = facts.get("host") or {}
    cgroup = facts.get("cgroup")
    disks = facts.get("disks") or {}
    overrides = facts.get("env_overrides") or {}
    env = {**(facts.get("env") or {}), **overrides}
    vram, unseen = vram_check(view, facts.get("vram_holders"))
    if unseen and vram.status is Status.PASS:
        vram = Check(vram.name, vram.status, f"{vram.detail} ({'; '.join(unseen)})", vram.gotchas)
    checks = [python_check(facts.get("python")), presence_check(view), vram]
    checks += [throttle_check(view), clocks_check(view), triangle_check(view, facts.get("torch"))]
    for role in ("workdir", "durable"):
        checks += disk_checks(role, disks.get(role))
    checks.append(caches_check(disks, overrides))
    checks.append(memory_check(cgroup, host))
    checks.append(cpu_quota_check(cgroup, host, env))
    checks += tool_checks(facts.get("tools") or {})
    return checks


def audit_report(target: str, facts: AuditFacts) -> AuditReport:
    """The ``up --json`` document: ``{"target", "checks", "ok"}``; ok is False on any FAIL."""
    checks = audit_checks(facts)
    return {
        "target": target,
        "checks": [c.to_json() for c in checks],
        "ok": all(c.status is not Status.FAIL for c in checks),
    }
