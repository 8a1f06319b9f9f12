"""``outlive doctor RUN``: why a run died or is slow, from the agent's ``doctor`` facts.

The box's probe already walks the vanished-process ladder from outlive's own records (boot id,
cgroup oom_kill counter, exit signal; U3, U41). Here the kernel log sharpens it — an OOM kill of
the job's pid or cgroup makes the cause ``oom`` even without a cgroup counter, and Xid errors
name a dead GPU (U22) — and every fact that could not be read is listed in ``could_not_check``
instead of being guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from outlive.diagnose.disk import disk_checks
from outlive.diagnose.facts import (
    DiagnosisJson,
    DmesgFacts,
    DoctorFacts,
    ExitRecord,
    HostFacts,
    LaunchRecord,
    ProbeFacts,
)
from outlive.diagnose.gpu import (
    GpuView,
    clocks_check,
    feed_check,
    presence_check,
    read_gpu,
    throttle_check,
    vram_check,
)
from outlive.diagnose.kernel import KernelEvents, OomKill, Xid, parse_kernel_log, split_timestamp
from outlive.diagnose.model import Check, CheckJson, Status
from outlive.diagnose.system import memory_check, threads_check
from outlive.diagnose.verdict import VerdictJson, rank_verdict

if TYPE_CHECKING:
    from outlive.gotchas import Match

if TYPE_CHECKING:
    from outlive.gotchas.match import Match

__all__ = ["DMESG_CLOCK_SLACK_S", "DoctorReport", "Ladder", "doctor_report", "walk_ladder"]

# The kernel log's clock (seconds since boot) drifts from wall-clock time; an event this many
# seconds before the recorded start of the run (or after its end) still counts as in the run.
DMESG_CLOCK_SLACK_S = 120.0


class DoctorReport(TypedDict):
    """The ``doctor --json`` document."""

    run_id: str
    state: str
    verdict: VerdictJson | None
    diagnosis: DiagnosisJson | None
    log_matches: list[dict[str, object]]
    checks: list[CheckJson]
    could_not_check: list[str]


@dataclass
class Ladder:
    """The refined diagnosis, the kernel-log checks and what could not be checked."""

    diagnosis: DiagnosisJson | None
    checks: list[Check] = field(default_factory=list)
    could_not_check: list[str] = field(default_factory=list)


def _dmesg_unreadable(dmesg: DmesgFacts | None) -> str | None:
    if dmesg is None:
        return "the kernel log was not collected"
    if dmesg.get("readable"):
        return None
    why = dmesg.get("error") or "unreadable"
    if dmesg.get("dmesg_restrict") == "1" and not dmesg.get("missing"):
        why += " (kernel.dmesg_restrict=1: only root may read it)"
    return str(why)


def _window(
    launch: LaunchRecord, exit_rec: ExitRecord | None, host: HostFacts
) -> tuple[float, float] | None:
    """The run's start and end in kernel-log seconds (since boot), widened by the slack."""
    btime, started = host.get("btime"), launch.get("started_at")
    if btime is None or started is None:
        return None
    ended = (exit_rec or {}).get("ended_at") or host.get("now")
    if ended is None:
        return None
    return (
        float(started) - float(btime) - DMESG_CLOCK_SLACK_S,
        float(ended) - float(btime) + DMESG_CLOCK_SLACK_S,
    )


def _inside(ts: float | None, window: tuple[float, float] | None) -> bool:
    return window is not None and ts is not None and window[0] <= ts <= window[1]


def _run_kills(
    events: KernelEvents, launch: LaunchRecord, window: tuple[float, float] | None
) -> list[OomKill]:
    """OOM kills of this run: of the job's pid after it started, or of any process in the run's
    memory cgroup (a DataLoader worker is in it too) during the run."""
    job_pid = launch.get("pid")
    memcg = str(launch.get("memory_cgroup") or "")
    cg_pids = {
        c.pid
        for c in events.oom_contexts
        if c.pid is not None
        and _inside(c.ts_s, window)
        and (c.task_memcg or "/") != "/"
        and memcg.rstrip("/").endswith(str(c.task_memcg).rstrip("/"))
    }
    out = []
    for kill in events.oom_kills:
        after_start = window is None or kill.ts_s is None or kill.ts_s >= window[0]
        if (kill.pid == job_pid and after_start) or (kill.pid in cg_pids):
            out.append(kill)
    return out


def _xid_text(x: Xid, window: tuple[float, float] | None) -> str:
    when = " during the run" if _inside(x.ts_s, window) else ""
    return f"Xid {x.code} on {x.pci}{when}: {x.meaning}"


def walk_ladder(
    probe: ProbeFacts,
    launch: LaunchRecord,
    exit_rec: ExitRecord | None,
    host: HostFacts,
    dmesg: DmesgFacts | None,
) -> Ladder:
    """The probe's diagnosis sharpened by the kernel log, with the kernel-log checks."""
    base = probe.get("diagnosis")
    diag: DiagnosisJson | None = None
    if isinstance(base, dict):
        diag = {
            "cause": base.get("cause"),
            "evidence": list(base.get("evidence") or []),
            "gotchas": list(base.get("gotchas") or []),
        }
    ladder = Ladder(diag)
    ended_badly = probe.get("state") in ("vanished", "failed")
    if ended_badly and launch and launch.get("oom_kill_baseline") is None:
        ladder.could_not_check.append(
            "cgroup oom_kill counter: none was readable when the run started, so the cgroup "
            "can neither confirm nor rule out an OOM kill (U41)"
        )
    rebooted = diag is not None and diag["cause"] == "reboot"
    uptime_s = host.get("uptime_s")
    if rebooted and diag is not None and uptime_s is not None:
        diag["evidence"].append(f"the box has been up for {float(uptime_s):.0f} s")
    unreadable = _dmesg_unreadable(dmesg)
    if unreadable is not None or dmesg is None:
        unreadable = unreadable or "not collected"
        ladder.could_not_check.append(
            f"kernel log (dmesg): {unreadable}; OOM kills outside the run's cgroup and GPU Xid "
            "errors cannot be ruled out (U3, U22)"
        )
        skip = f"the kernel log is not readable: {unreadable}"
        ladder.checks.append(Check("oom (kernel log)", Status.SKIP, skip, ("U3", "U9")))
        ladder.checks.append(Check("xid", Status.SKIP, skip, ("U22",)))
        _note_unknown_sender(ladder)
        return ladder
    events = parse_kernel_log(dmesg.get("lines") or [])
    window = None if rebooted else _window(launch, exit_rec, host)
    _check_coverage(ladder, dmesg, window, rebooted)
    kills = [] if rebooted else _run_kills(events, launch, window)
    others = [k for k in events.oom_kills if _inside(k.ts_s, window) and k not in kills]
    if rebooted:
        ladder.checks.append(
            Check(
                "oom (kernel log)",
                Status.SKIP,
                "the kernel log of the boot the run died in was lost with the reboot",
                ("U3",),
            )
        )
    elif kills:
        ladder.checks.append(
            Check("oom (kernel log)", Status.FAIL, kills[-1].line, ("U3", "U9", "U41"))
        )
    elif others:
        shown = "; ".join(f"pid {k.pid} ({k.comm})" for k in others[:3])
        ladder.checks.append(
            Check(
                "oom (kernel log)",
                Status.WARN,
                f"the OOM killer ended other processes during the run: {shown}",
                ("U41",),
            )
        )
    else:
        ladder.checks.append(
            Check(
                "oom (kernel log)",
                Status.PASS,
                "no OOM kill of the job or its cgroup in the kernel log",
                ("U3", "U9"),
            )
        )
    if diag is not None and not rebooted:
        if kills:
            if diag["cause"] != "oom":
                diag["cause"] = "oom"
                diag["gotchas"] = ["U3", "U9", "U41"]
            diag["evidence"].append(f"kernel log: {kills[-1].line}")
        elif diag["cause"] in ("killed", "unknown"):
            diag["evidence"].append(
                f"kernel log: no OOM kill of the job (pid {launch.get('pid')}) or of its cgroup "
                "since the run started"
            )
    ladder.checks.append(_xid_check(events.xids, window))
    bad = [x for x in events.xids if x.rerent and (rebooted or _inside(x.ts_s, window))]
    if diag is not None and bad:
        diag["evidence"].append("kernel log: " + _xid_text(bad[-1], window))
        if "U22" not in diag["gotchas"]:
            diag["gotchas"].append("U22")
    _note_unknown_sender(ladder)
    return ladder


def _check_coverage(
    ladder: Ladder, dmesg: DmesgFacts, window: tuple[float, float] | None, rebooted: bool
) -> None:
    """A kernel log that starts after the run did has lost the lines that would matter."""
    first_ts, _ = split_timestamp(str(dmesg.get("first_line") or ""))
    late = (
        first_ts is not None and window is not None and first_ts > window[0] + DMESG_CLOCK_SLACK_S
    )
    if late and not rebooted:
        ladder.could_not_check.append(
            f"kernel log before {first_ts:.0f} s after boot: the ring buffer has rotated "
            "past the start of the run, so earlier OOM or Xid lines are gone"
        )
    if dmesg.get("lines_dropped"):
        ladder.could_not_check.append(
            f"{dmesg['lines_dropped']} older matching kernel log lines (only the newest were sent)"
        )


def _note_unknown_sender(ladder: Ladder) -> None:
    if ladder.diagnosis is not None and ladder.diagnosis.get("cause") == "killed":
        ladder.could_not_check.append(
            "who sent the kill: Linux keeps no record of a signal's sender, so a manual kill "
            "(an over-broad pkill), a platform stop and a container restart look alike (U3)"
        )


def _xid_check(xids: list[Xid], window: tuple[float, float] | None) -> Check:
    if not xids:
        return Check("xid", Status.PASS, "no NVIDIA Xid error since boot", ("U22",))
    rerent = [x for x in xids if x.rerent]
    if rerent:
        return Check(
            "xid",
            Status.FAIL,
            _xid_text(rerent[-1], window)
            + ": a hardware fault a tenant cannot repair; stop this box and rent another",
            ("U22",),
        )
    codes = sorted({x.code for x in xids})
    return Check(
        "xid",
        Status.WARN,
        f"Xid error(s) {', '.join(map(str, codes))} since boot; latest: "
        + _xid_text(xids[-1], window),
        ("U22",),
    )


def _run_check(probe: ProbeFacts, diag: DiagnosisJson | None, said: list[Match]) -> Check:
    state = probe.get("state")
    gotchas = tuple((diag.get("gotchas") if diag else None) or ())
    if state == "running":
        age = probe.get("heartbeat_age_s")
        beat = f", last heartbeat {age:.0f} s ago" if isinstance(age, int | float) else ""
        return Check("run", Status.PASS, f"running (pid {probe.get('pid')}){beat}", ())
    if state == "succeeded":
        return Check("run", Status.PASS, "succeeded (exit code 0)", ())
    if state == "cancelled":
        return Check("run", Status.PASS, "cancelled on request", ())
    if state == "pending":
        return Check("run", Status.SKIP, "pending: the box has no launch record yet", ())
    if diag is not None:
        evidence = "; ".join(diag.get("evidence") or [])
        return Check("run", Status.FAIL, f"{state}: {diag.get('cause')} — {evidence}", gotchas)
    if state == "failed":
        failed = f"failed with exit code {probe.get('exit_code')}"
        return Check("run", Status.FAIL, failed + _log_cause(said), tuple(m.id for m in said))
    return Check("run", Status.FAIL, f"{state}: {probe.get('error') or 'no readable records'}", ())


def _run_log(
    whole: list[Match] | None, why: str | None, tail: str | None
) -> tuple[list[Match], str | None]:
    """The run log's matches, most specific first: of the whole log when it was read, else of
    the tail the agent sent for a failed run; and what could not be read, if anything."""
    if whole is not None:
        return whole, None
    lost = (
        f"run log: {why or 'not read'}; failures the log alone shows (NCCL timeouts, "
        "tracebacks, NaN losses) could not be matched against the catalog"
    )
    if not tail:
        return [], lost
    from outlive.gotchas import explain_text

    return explain_text(tail), lost.replace(
        "could not be matched against the catalog",
        "were matched only in the last 64 KiB the box sent",
    )


def _log_cause(said: list[Match]) -> str:
    """What the failed run's log says, by the catalog: the line, the cause and the fix."""
    return "".join(
        f"; its log says {m.text.strip()[:160]!r} ({m.id}: {m.title}); fix: {m.fix}" for m in said
    )


def _gpu_could_not(view: GpuView) -> list[str]:
    out = []
    if view.state == "missing":
        out.append(
            "GPU: nvidia-smi is not installed on this box (no NVIDIA GPU visible), so clocks, "
            "throttling, utilisation and VRAM holders were not checked"
        )
    elif not view.ok:
        out.append(f"GPU: {view.error}")
    out += [f"GPU: {p}" for p in view.problems]
    return out


def doctor_report(
    run_id: str,
    facts: DoctorFacts,
    log_matches: list[Match] | None = None,
    log_error: str | None = None,
) -> DoctorReport:
    """The ``doctor --json`` document: ``{"run_id", "state", "verdict", "diagnosis",
    "log_matches", "checks", "could_not_check"}``. ``log_matches`` are the run's log explained
    against the catalog (None: the log was not read, ``log_error`` says why)."""
    probe = facts.get("probe") or {}
    launch = facts.get("launch") or {}
    host = facts.get("host") or {}
    state = str(probe.get("state") or "unknown")
    running = state == "running"
    ladder = walk_ladder(probe, launch, facts.get("exit"), host, facts.get("dmesg"))
    view = read_gpu(facts.get("gpu"))
    threads = facts.get("threads")
    own_pids = [p["pid"] for p in (threads.get("procs") or [])] if threads else []
    own_pgid = launch.get("pgid")
    vram, unseen = vram_check(view, facts.get("vram_holders"), own_pids, own_pgid)
    job_cgroup = facts.get("job_cgroup")
    matches, log_note = _run_log(log_matches, log_error, facts.get("log_tail"))
    checks = [_run_check(probe, ladder.diagnosis, matches[:2]), *ladder.checks]
    checks += [presence_check(view), vram, throttle_check(view), clocks_check(view)]
    if running:
        checks.append(feed_check(view))
    disks = facts.get("disks") or {}
    checks += disk_checks("workdir", disks.get("run_dir"))
    if "ckpt_dir" in disks:
        checks += disk_checks("durable", disks.get("ckpt_dir"))
    checks.append(memory_check(facts.get("run_cgroup"), host, launch.get("oom_kill_baseline")))
    if running:
        checks.append(threads_check(facts.get("threads"), job_cgroup, host))
    could_not = ladder.could_not_check + _gpu_could_not(view) + unseen
    if log_note:
        could_not.append(log_note)
    checks_json = [c.to_json() for c in checks]
    return {
        "run_id": run_id,
        "state": state,
        "verdict": rank_verdict(state, ladder.diagnosis, checks_json, matches),
        "diagnosis": ladder.diagnosis,
        "log_matches": [m.as_dict() for m in matches],
        "checks": checks_json,
        "could_not_check": could_not,
    }
