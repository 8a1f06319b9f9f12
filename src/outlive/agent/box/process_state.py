"""A setsid or tmux run's state from its records and the processes they name, and, for a run that
died by a signal or vanished, the evidence of why (reboot, OOM, hang-up, killed)."""

from __future__ import annotations

import os
import signal

from outlive import wire

from .common import Rec, count_of
from .procfs import is_alive, read_oom_kill
from .records import read_exit, read_json, read_progress, unreadable_exit


def diagnose(launch: Rec, exit_rec: Rec | None, boot_now: str | None, oom_now: int | None) -> Rec:
    """Why a run ended without an exit record, or died by a signal: the evidence, never a guess."""
    evidence = []
    then = launch.get("boot_id")
    if then and boot_now and then != boot_now:
        evidence.append(f"boot id changed from {then} to {boot_now}: the box rebooted")
        return {"cause": "reboot", "evidence": evidence, "gotchas": ["U3", "GEN6"]}
    base = count_of(launch.get("oom_kill_baseline"))
    after = count_of((exit_rec or {}).get("oom_kill_after"))
    latest = after if after is not None else oom_now
    if oom_now is not None and after is not None:
        latest = max(after, oom_now)
    if base is not None and latest is not None and latest > base:
        evidence.append(
            f"cgroup {launch.get('memory_cgroup')} oom_kill counter grew from {base} to {latest}"
        )
        return {"cause": "oom", "evidence": evidence, "gotchas": ["U3", "U41"]}
    if base is None:
        evidence.append(
            "no cgroup oom_kill counter was readable at launch, so OOM cannot be ruled out"
        )
    else:
        evidence.append(f"cgroup oom_kill counter unchanged ({base})")
    if then and boot_now:
        evidence.append(f"boot id unchanged ({boot_now})")
    if exit_rec and exit_rec.get("signal") == signal.SIGHUP:
        return {
            "cause": "hangup",
            "evidence": [*evidence, "the job died of SIGHUP"],
            "gotchas": ["U3", "GEN2"],
        }
    if exit_rec is not None:
        evidence.append(
            "the job died of %s" % (exit_rec.get("signal_name") or exit_rec.get("signal"))
        )
    else:
        evidence.append("the supervisor and the job are both gone and no exit record was written")
    return {"cause": "killed", "evidence": evidence, "gotchas": ["U3"]}


def probe_process(run_dir: str, spec: Rec, boot_now: str | None, now: float) -> Rec:
    """One run's RunProbe JSON (``spec`` is its run.json)."""
    launch = read_json(os.path.join(run_dir, wire.LAUNCH_JSON))
    exit_json = os.path.join(run_dir, wire.EXIT_JSON)
    exit_rec = read_exit(exit_json)
    cancel = read_json(os.path.join(run_dir, wire.CANCEL_JSON))
    progress, heartbeat_age_s = read_progress(run_dir, now)
    out = wire.RunProbe(
        run_dir=run_dir,
        state=wire.State.PENDING.value,
        run_id=spec.get("run_id"),
        name=spec.get("name"),
        ckpt_dir=spec.get("ckpt_dir"),
        heartbeat_age_s=heartbeat_age_s,
        progress=progress,
        cancel_requested=isinstance(cancel, dict),
    )
    if not isinstance(launch, dict):
        return out.to_json()
    out.pid = launch.get("pid")
    out.supervisor_pid = launch.get("supervisor_pid")
    out.started_at = launch.get("started_at")
    if isinstance(exit_rec, dict) and "_unreadable" not in exit_rec:
        out.exit_code = exit_rec.get("exit_code")
        out.signal = exit_rec.get("signal")
        out.ended_at = exit_rec.get("ended_at")
        out.max_rss_bytes = exit_rec.get("max_rss_bytes")
        if exit_rec.get("error"):
            out.error = exit_rec["error"]
        if exit_rec.get("exit_code") == 0:
            out.state = wire.State.SUCCEEDED.value
        elif isinstance(cancel, dict):
            out.state = wire.State.CANCELLED.value  # we asked it to stop, whatever its exit code
        else:
            out.state = wire.State.FAILED.value
            if exit_rec.get("signal"):
                oom = read_oom_kill(launch.get("memory_cgroup"))
                out.diagnosis = diagnose(launch, exit_rec, boot_now, oom)
        return out.to_json()
    same_boot = not launch.get("boot_id") or launch.get("boot_id") == boot_now
    job_alive = same_boot and is_alive(launch.get("pid"), launch.get("start_ticks"))
    sup_alive = same_boot and is_alive(
        launch.get("supervisor_pid"), launch.get("supervisor_start_ticks")
    )
    if sup_alive or job_alive:
        out.state = wire.State.RUNNING.value
        if not sup_alive:
            out.warning = (
                "the supervisor is gone but the job still runs; its exit will not be recorded"
            )
        return out.to_json()
    # A supervisor can finish writing exit.json between our two reads: look once more. Only
    # when the first read found no file: an unreadable exit.json would recurse forever and
    # break the probe of every run on the target.
    if exit_rec is None and os.path.exists(exit_json):
        return probe_process(run_dir, spec, boot_now, now)
    if exit_rec is not None:
        out.error = unreadable_exit(exit_rec, exit_json)
    out.state = wire.State.VANISHED.value
    out.diagnosis = diagnose(launch, None, boot_now, read_oom_kill(launch.get("memory_cgroup")))
    return out.to_json()
