"""One ranked verdict for ``outlive doctor``: the run's own evidence first.

Every source of evidence proposes causes, each with a weight:

- the exit record and the vanished-process ladder (``diagnosis``): hard facts such as an OOM
  kill, a reboot or a dead GPU weigh most; a bare "killed" or a non-zero exit says little;
- the run's log, matched against the gotcha catalog: an exact library signature (specificity 9)
  outweighs a generic diagnosis, a vague one does not;
- the box facts (``checks``): a FAIL there (a full disk, a broken GPU) is a cause in its own
  right, a WARN only a hint.

A log match or a check that names the diagnosis's own gotcha corroborates it instead of
competing. The top candidate is the verdict; the others stay listed as ``also``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from outlive.diagnose.facts import DiagnosisJson
from outlive.diagnose.model import CheckJson

if TYPE_CHECKING:
    from outlive.gotchas import Match

__all__ = ["VerdictJson", "rank_verdict"]

# diagnosis causes backed by a kernel or platform record, not by an absence of evidence
_HARD_CAUSES = frozenset({"oom", "reboot", "hangup"})
_HARD_WEIGHT = 92
_SOFT_WEIGHT = 40
_CHECK_FAIL_WEIGHT = 70
_CORROBORATION = 10


class VerdictJson(TypedDict):
    """The ``verdict`` of ``doctor --json``."""

    status: str  # FAIL when the run failed or a check failed, else OK
    cause: str
    gotchas: list[str]
    fix: str
    evidence: list[str]
    sources: list[str]  # which evidence named it: diagnosis, log, box
    also: list[str]  # the runners-up, most likely first ("X1 (log line 12)")


@dataclass
class _Candidate:
    weight: int
    cause: str
    gotchas: list[str]
    evidence: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _fix(gotchas: list[str]) -> str:
    from outlive.gotchas import by_id

    for gid in gotchas:
        try:
            return by_id(gid).fix
        except KeyError:
            continue
    return ""


def _from_diagnosis(diag: DiagnosisJson | None, checks: list[CheckJson]) -> _Candidate | None:
    if diag is None:
        run = next((c for c in checks if c["name"] == "run" and c["status"] == "FAIL"), None)
        if run is None:
            return None
        # the check's gotchas came from the log, which speaks for itself below
        cause = run["detail"].split("; its log says", 1)[0]
        return _Candidate(_SOFT_WEIGHT, cause, [], [], ["exit"])
    cause = str(diag.get("cause") or "unknown")
    weight = _HARD_WEIGHT if cause in _HARD_CAUSES else _SOFT_WEIGHT
    return _Candidate(
        weight, cause, list(diag.get("gotchas") or []), list(diag.get("evidence") or []), ["exit"]
    )


def _from_log(matches: list[Match]) -> list[_Candidate]:
    return [
        _Candidate(
            50 + 5 * m.specificity,
            m.title,
            [m.id],
            [f"log line {m.line}: {m.text}"],
            ["log"],
        )
        for m in matches
    ]


def _from_checks(checks: list[CheckJson]) -> list[_Candidate]:
    return [
        _Candidate(
            _CHECK_FAIL_WEIGHT,
            f"{c['name']}: {c['detail']}",
            list(c["gotchas"]),
            [f"box: {c['name']} {c['detail']}"],
            ["box"],
        )
        for c in checks
        if c["status"] == "FAIL" and c["name"] != "run"
    ]


def rank_verdict(
    state: str,
    diagnosis: DiagnosisJson | None,
    checks: list[CheckJson],
    matches: list[Match],
) -> VerdictJson | None:
    """The most likely cause with its fix, or None when nothing is wrong to explain."""
    failed = any(c["status"] == "FAIL" for c in checks)
    lead = _from_diagnosis(diagnosis, checks)
    others = _from_log(matches) + _from_checks(checks)
    if lead is None and not others:
        return None
    candidates: list[_Candidate] = []
    for cand in others:
        if lead is not None and set(cand.gotchas) & set(lead.gotchas):
            lead.weight += _CORROBORATION
            lead.evidence += cand.evidence
            lead.sources += [s for s in cand.sources if s not in lead.sources]
        else:
            candidates.append(cand)
    if lead is not None:
        candidates.append(lead)
    # a stable sort keeps evidence order (diagnosis last) among equals: log before box
    candidates.sort(key=lambda c: -c.weight)
    top, rest = candidates[0], candidates[1:]
    bad = failed or state in ("failed", "vanished")
    return {
        "status": "FAIL" if bad else "OK",
        "cause": top.cause,
        "gotchas": top.gotchas,
        "fix": _fix(top.gotchas),
        "evidence": top.evidence,
        "sources": top.sources,
        "also": [f"{', '.join(c.gotchas) or c.cause} ({'/'.join(c.sources)})" for c in rest],
    }
