"""outlive's box-side agent: one stdlib-only file (Python >= 3.8) run by the transport on the box.

Protocol: ``python3 box.py VERB`` reads one JSON request on stdin and prints one JSON reply on
stdout, ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "<one sentence>"}``. Every
name, path and command travels inside the JSON, never through a shell (hostile names are data).

Verbs: ``launch`` (write the run dir, start the supervisor, return once the job runs), ``probe``
(state of many runs in one call), ``cancel`` (TERM, then KILL after the grace), ``tail`` (log bytes
from an offset, for ``logs -f`` that survives connection drops). ``supervise RUN_DIR`` is internal:
the supervisor, in its own session, runs the job in its own process group, forwards
TERM/INT/USR1/USR2 to it and writes ``exit.json`` atomically when it ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List

Rec = Dict[str, Any]  # a JSON object as read from or written to the run dir

AGENT_VERSION = 1
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FORWARDED_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")
LAUNCH_TIMEOUT_S = 20.0
PROGRESS_TAIL_BYTES = 8192


class AgentError(Exception):
    """A failure reported to the client as one sentence."""


# ---------------------------------------------------------------------------------------------
# small file helpers


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str, data: object, mode: int = 0o644) -> None:
    """Write JSON durably: tmp, fsync, rename, fsync the directory (a rename is not durable
    until its directory entry is; U6)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def read_json(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"_unreadable": path}


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# facts about this machine


def boot_id() -> str | None:
    text = _read_text("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def proc_start_ticks(pid: int) -> int | None:
    """Start time of a live, non-zombie process in clock ticks since boot; None when gone.

    pids get reused, so liveness is (pid, start time), never the pid alone."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is None:
        if os.path.isdir("/proc/self"):
            return None
        try:  # no /proc (not Linux): fall back to a bare existence check
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int | None, start_ticks: int | None) -> bool:
    if not pid:
        return False
    now = proc_start_ticks(pid)
    if now is None:
        return False
    return start_ticks is None or now == 0 or now == start_ticks


def parse_cgroup_mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """Map 'memory' / 'cpu' (v1) and 'unified' (v2) to (mount root, mount point)."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        parts, rparts = left.split(), right.split()
        if len(parts) < 5 or len(rparts) < 3:
            continue
        root, point, fstype = parts[3], parts[4], rparts[0]
        if fstype == "cgroup2":
            mounts.setdefault("unified", (root, point))
        elif fstype == "cgroup":
            for opt in rparts[2].split(","):
                if opt in ("memory", "cpu"):
                    mounts.setdefault(opt, (root, point))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map controller name ('memory', 'cpu', or 'unified' for v2) to the cgroup path."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths["unified"] = path
        for c in controllers.split(","):
            if c in ("memory", "cpu"):
                paths[c] = path
    return paths


def _cgroup_dir(mount: tuple[str, str], path: str) -> str:
    root, point = mount
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return point.rstrip("/") + "/" + path.strip("/")


def cgroup_dirs(mountinfo: str, proc_cgroup: str) -> dict[str, str]:
    """Directories of this process's memory and cpu cgroups, v1 controllers preferred, else v2."""
    mounts, paths = parse_cgroup_mounts(mountinfo), parse_proc_cgroup(proc_cgroup)
    dirs: dict[str, str] = {}
    for ctl in ("memory", "cpu"):
        if ctl in mounts and ctl in paths:
            dirs[ctl] = _cgroup_dir(mounts[ctl], paths[ctl])
        elif "unified" in mounts and "unified" in paths:
            dirs[ctl] = _cgroup_dir(mounts["unified"], paths["unified"])
    return dirs


def read_oom_kill(memory_dir: str | None) -> int | None:
    """The cgroup's oom_kill counter: v2 ``memory.events`` or v1 ``memory.oom_control`` (U41)."""
    if not memory_dir:
        return None
    for name in ("memory.events", "memory.oom_control"):
        text = _read_text(os.path.join(memory_dir, name))
        if text is None:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def cpu_quota_cores(cpu_dir: str | None) -> float | None:
    """CPU cores the cgroup may use (v2 ``cpu.max`` or v1 cfs quota/period); None if unlimited."""
    if not cpu_dir:
        return None
    text = _read_text(os.path.join(cpu_dir, "cpu.max"))
    if text:
        quota, _, period = text.strip().partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
            return int(quota) / int(period)
        return None
    quota_t = _read_text(os.path.join(cpu_dir, "cpu.cfs_quota_us"))
    period_t = _read_text(os.path.join(cpu_dir, "cpu.cfs_period_us"))
    if quota_t and period_t:
        quota_v, period_v = int(quota_t.strip()), int(period_t.strip())
        if quota_v > 0 and period_v > 0:
            return quota_v / period_v
    return None


def own_cgroups() -> dict[str, str]:
    return cgroup_dirs(
        _read_text("/proc/self/mountinfo") or "", _read_text("/proc/self/cgroup") or ""
    )


def thread_count() -> int | None:
    """Threads for OMP/MKL when a cgroup CPU quota is set: the quota, not the host's cores (U40)."""
    quota = cpu_quota_cores(own_cgroups().get("cpu"))
    if quota is None:
        return None
    return max(1, min(os.cpu_count() or 1, math.ceil(quota)))


# ---------------------------------------------------------------------------------------------
# launch


def _check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise AgentError(f"run id {run_id!r} is not a safe identifier; this is a bug in the client")
    return run_id


def check_name(name: object) -> str:
    """A run name becomes a directory name under the durable path, so it must be one."""
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > 200:
        raise AgentError("run name must be 1-200 bytes")
    if name in (".", "..") or "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise AgentError(
            f"run name {name!r} cannot be a directory name (no '/', control characters, "
            "'.' or '..'); choose another with --name"
        )
    return name


def verb_launch(req: Rec) -> Rec:
    run_id = _check_run_id(req.get("run_id"))
    name = check_name(req.get("name"))
    command = req.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise AgentError("the command must be a non-empty list of strings")
    if any("\x00" in a for a in command):
        raise AgentError("the command contains a NUL byte, which no program can receive")
    workdir = os.path.expanduser(str(req["workdir"]))
    if not os.path.isdir(workdir):
        raise AgentError(f"workdir {workdir} does not exist on the box; push the project first")
    manifest = req.get("deploy_manifest")
    if manifest:
        problems = check_deploy(workdir, manifest)
        if problems:  # never run code other than what the user has locally (U42)
            shown = "; ".join(problems[:3]) + (
                f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            )
            raise AgentError(
                f"refusing to launch: the box's copy of the project differs from the local tree "
                f"({shown}); run `outlive push` again"
            )
    runs_dir = os.path.join(workdir, ".outlive", "runs")
    os.makedirs(runs_dir, exist_ok=True)
    _ignore_outlive_dir(os.path.join(workdir, ".outlive"))
    run_dir = os.path.join(runs_dir, run_id)
    os.mkdir(run_dir)  # fails if the id exists: a run dir is never reused
    durable_root = os.path.expanduser(
        str(req.get("durable") or os.path.join(workdir, ".outlive", "durable"))
    )
    ckpt_dir = os.path.join(durable_root, name)
    os.makedirs(ckpt_dir, exist_ok=True)
    spec = {
        "run_id": run_id,
        "name": name,
        "command": command,
        "env": {str(k): str(v) for k, v in (req.get("env") or {}).items()},
        "workdir": workdir,
        "ckpt_dir": ckpt_dir,
        "target": req.get("target"),
        "profile": req.get("profile"),
        "pythonpath": req.get("pythonpath") or _bundle_dir(),
        "spot_grace_s": req.get("spot_grace_s"),
        "mtbf_s": req.get("mtbf_s"),
        "kill_grace_s": req.get("kill_grace_s", 30),
        "created_at": req.get("created_at") or time.time(),
        "agent_version": AGENT_VERSION,
    }
    run_json = os.path.join(run_dir, "run.json")
    write_json_atomic(run_json, spec)
    os.chmod(run_json, 0o444)  # the spec is written once, never edited (U2)

    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env["OUTLIVE_READY_FD"] = str(write_fd)
    with open(os.path.join(run_dir, "supervisor.log"), "ab") as slog:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "supervise", run_dir],
            stdin=subprocess.DEVNULL,
            stdout=slog,
            stderr=slog,
            start_new_session=True,  # no controlling terminal: an SSH hang-up cannot reach it
            pass_fds=(write_fd,),
            env=env,
            cwd=run_dir,
        )
    os.close(write_fd)
    ready = _read_ready(read_fd, LAUNCH_TIMEOUT_S)
    if ready is None:
        log = (_read_text(os.path.join(run_dir, "supervisor.log")) or "").strip().splitlines()
        last_line = log[-1] if log else ""
        raise AgentError(
            f"the supervisor did not report the job started within {LAUNCH_TIMEOUT_S:.0f} s "
            f"({last_line or 'no output'}); see {run_dir}"
        )
    ready["run_dir"] = run_dir
    ready["ckpt_dir"] = ckpt_dir
    return ready


def _bundle_dir() -> str | None:
    """This agent's own directory when it sits in a bundle next to the job library."""
    here = os.path.dirname(os.path.abspath(__file__))
    return here if os.path.isfile(os.path.join(here, "outlive", "__init__.py")) else None


def _ignore_outlive_dir(path: str) -> None:
    gitignore = os.path.join(path, ".gitignore")
    if not os.path.exists(gitignore):
        with open(gitignore, "w", encoding="utf-8") as f:
            f.write("# outlive's run records and local durable checkpoints\n*\n")


def _read_ready(fd: int, timeout_s: float) -> Rec | None:
    import select

    deadline = time.monotonic() + timeout_s
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------
# the supervisor


def _job_env(spec: Rec, run_dir: str, threads: int | None) -> dict[str, str]:
    """The job's environment: the box's, the user's, then outlive's contract (DESIGN.md)."""
    env = dict(os.environ)
    env.pop("OUTLIVE_READY_FD", None)
    user_env = spec.get("env") or {}
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if threads is not None and key not in user_env and key not in env:
            env[key] = str(threads)  # the cgroup quota, not the host's cores (U40)
    env.update(user_env)
    env.update(
        {
            "OUTLIVE_RUN_ID": spec["run_id"],
            "OUTLIVE_RUN_NAME": spec["name"],
            "OUTLIVE_CKPT_DIR": spec["ckpt_dir"],
            "OUTLIVE_PROGRESS_FILE": os.path.join(run_dir, "progress.jsonl"),
            "OUTLIVE_TARGET": str(spec.get("target") or ""),
            "OUTLIVE_PROFILE": str(spec.get("profile") or ""),
            "PYTHONUNBUFFERED": "1",  # a detached log must not look frozen (U43)
        }
    )
    for key, value in (
        ("OUTLIVE_SPOT_GRACE_S", spec.get("spot_grace_s")),
        ("OUTLIVE_MTBF_S", spec.get("mtbf_s")),
    ):
        if value is not None:
            env[key] = str(value)
    if spec.get("pythonpath"):
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = spec["pythonpath"] + (os.pathsep + old if old else "")
    return env


class _Supervisor:
    """Runs one job and records how it ended. State lives here, not in globals."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.spec = read_json(os.path.join(run_dir, "run.json"))
        self.pgid: int | None = None
        self.pending: List[int] = []
        self.forwarded: List[str] = []
        self.cancel_armed = False

    def on_signal(self, signum: int, frame: object) -> None:
        if self.pgid is None:
            self.pending.append(signum)
            return
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        self.forwarded.append(signal.Signals(signum).name)
        try:
            os.killpg(self.pgid, signum)  # type: ignore[arg-type]
        except ProcessLookupError:
            return
        cancel = read_json(os.path.join(self.run_dir, "cancel.json"))
        if signum == signal.SIGTERM and isinstance(cancel, dict) and not self.cancel_armed:
            self.cancel_armed = True
            signal.alarm(max(1, math.ceil(float(cancel.get("grace_s", 30)))))

    def on_alarm(self, signum: int, frame: object) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)  # type: ignore[arg-type]
            self.forwarded.append("SIGKILL")
        except ProcessLookupError:
            pass

    def run(self) -> int:
        spec = self.spec
        if not isinstance(spec, dict) or "command" not in spec:
            return 2
        for name in FORWARDED_SIGNALS:
            signal.signal(getattr(signal, name), self.on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, self.on_alarm)
        cgroups = own_cgroups()
        threads = thread_count()
        env = _job_env(spec, self.run_dir, threads)
        log_path = os.path.join(self.run_dir, "stdout.log")
        launch = {
            "supervisor_pid": os.getpid(),
            "supervisor_start_ticks": proc_start_ticks(os.getpid()),
            "boot_id": boot_id(),
            "memory_cgroup": cgroups.get("memory"),
            "oom_kill_baseline": read_oom_kill(cgroups.get("memory")),
            "threads": threads,
            "started_at": time.time(),
        }
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    spec["command"],
                    cwd=spec["workdir"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=os.setpgrp,  # own process group: signals reach its children too
                )
            except OSError as exc:
                launch.update({"pid": None, "pgid": None, "start_ticks": None})
                write_json_atomic(os.path.join(self.run_dir, "launch.json"), launch)
                msg = "could not start {!r}: {}".format(spec["command"][0], exc.strerror or exc)
                log.write((f"outlive: {msg}\n").encode())
                self._write_exit(127, None, 0, launch, error=msg)
                self._report_ready(launch)
                return 0
        self.pgid = proc.pid
        launch.update(
            {"pid": proc.pid, "pgid": proc.pid, "start_ticks": proc_start_ticks(proc.pid)}
        )
        write_json_atomic(os.path.join(self.run_dir, "launch.json"), launch)
        self._report_ready(launch)
        for signum in self.pending:
            self._forward(signum)
        _, status, rusage = os.wait4(proc.pid, 0)
        signal.alarm(0)
        proc.returncode = status  # reaped here; keep Popen from waiting on it again
        code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else None
        if code is None:
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        exit_code, sig = (None, -code) if code < 0 else (code, None)
        self._write_exit(exit_code, sig, rusage.ru_maxrss * 1024, launch)
        return 0

    def _report_ready(self, launch: Rec) -> None:
        fd = int(os.environ.get("OUTLIVE_READY_FD", "-1"))
        if fd < 0:
            return
        try:
            os.write(fd, json.dumps(launch).encode("utf-8"))
            os.close(fd)
        except OSError:
            pass  # the launching agent gave up waiting; the records on disk still tell the truth

    def _write_exit(
        self,
        code: int | None,
        sig: int | None,
        max_rss_bytes: int,
        launch: Rec,
        error: str | None = None,
    ) -> None:
        record = {
            "exit_code": code,
            "signal": sig,
            "signal_name": signal.Signals(sig).name if sig else None,
            "max_rss_bytes": max_rss_bytes,
            "ended_at": time.time(),
            "oom_kill_after": read_oom_kill(launch.get("memory_cgroup")),
            "forwarded_signals": self.forwarded,
        }
        if error:
            record["error"] = error
        write_json_atomic(os.path.join(self.run_dir, "exit.json"), record)


# ---------------------------------------------------------------------------------------------
# probe: the state of many runs in one call


def _progress(run_dir: str, now: float) -> tuple[Rec | None, float | None]:
    path = os.path.join(run_dir, "progress.jsonl")
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            f.seek(max(0, st.st_size - PROGRESS_TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None, None
    for line in reversed(tail.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written right now, or cut by the tail window
        if isinstance(record, dict):
            return record, max(0.0, now - st.st_mtime)
    return None, max(0.0, now - st.st_mtime)


def diagnose(launch: Rec, exit_rec: Rec | None, boot_now: str | None, oom_now: int | None) -> Rec:
    """Why a run ended without an exit record, or died by a signal: the evidence, never a guess."""
    evidence = []
    then = launch.get("boot_id")
    if then and boot_now and then != boot_now:
        evidence.append(f"boot id changed from {then} to {boot_now}: the box rebooted")
        return {"cause": "reboot", "evidence": evidence, "gotchas": ["U3", "GEN6"]}
    base = launch.get("oom_kill_baseline")
    after = (exit_rec or {}).get("oom_kill_after")
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


def probe_one(run_dir: str, boot_now: str | None, now: float) -> Rec:
    spec = read_json(os.path.join(run_dir, "run.json"))
    if not isinstance(spec, dict) or "_unreadable" in spec:
        return {
            "run_dir": run_dir,
            "state": "unknown",
            "error": f"no readable run.json in {run_dir}",
        }
    launch = read_json(os.path.join(run_dir, "launch.json"))
    exit_rec = read_json(os.path.join(run_dir, "exit.json"))
    cancel = read_json(os.path.join(run_dir, "cancel.json"))
    progress, heartbeat_age_s = _progress(run_dir, now)
    out = {
        "run_id": spec.get("run_id"),
        "name": spec.get("name"),
        "run_dir": run_dir,
        "ckpt_dir": spec.get("ckpt_dir"),
        "exit_code": None,
        "signal": None,
        "pid": None,
        "supervisor_pid": None,
        "started_at": None,
        "ended_at": None,
        "heartbeat_age_s": heartbeat_age_s,
        "progress": progress,
        "diagnosis": None,
        "cancel_requested": isinstance(cancel, dict),
    }
    if not isinstance(launch, dict):
        out["state"] = "pending"
        return out
    out.update(
        {
            "pid": launch.get("pid"),
            "supervisor_pid": launch.get("supervisor_pid"),
            "started_at": launch.get("started_at"),
        }
    )
    if isinstance(exit_rec, dict) and "_unreadable" not in exit_rec:
        out.update(
            {
                "exit_code": exit_rec.get("exit_code"),
                "signal": exit_rec.get("signal"),
                "ended_at": exit_rec.get("ended_at"),
                "max_rss_bytes": exit_rec.get("max_rss_bytes"),
            }
        )
        if exit_rec.get("error"):
            out["error"] = exit_rec["error"]
        if exit_rec.get("exit_code") == 0:
            out["state"] = "succeeded"
        elif isinstance(cancel, dict):
            out["state"] = "cancelled"  # it stopped because we asked, whatever its exit code
        else:
            out["state"] = "failed"
            if exit_rec.get("signal"):
                oom = read_oom_kill(launch.get("memory_cgroup"))
                out["diagnosis"] = diagnose(launch, exit_rec, boot_now, oom)
        return out
    same_boot = not launch.get("boot_id") or launch.get("boot_id") == boot_now
    job_alive = same_boot and is_alive(launch.get("pid"), launch.get("start_ticks"))
    sup_alive = same_boot and is_alive(
        launch.get("supervisor_pid"), launch.get("supervisor_start_ticks")
    )
    if sup_alive or job_alive:
        out["state"] = "running"
        if not sup_alive:
            out["warning"] = (
                "the supervisor is gone but the job still runs; its exit will not be recorded"
            )
        return out
    # A supervisor can finish writing exit.json between our two reads: look once more.
    if os.path.exists(os.path.join(run_dir, "exit.json")):
        return probe_one(run_dir, boot_now, now)
    out["state"] = "vanished"
    out["diagnosis"] = diagnose(launch, None, boot_now, read_oom_kill(launch.get("memory_cgroup")))
    return out


def verb_probe(req: Rec) -> Rec:
    now = time.time()
    boot_now = boot_id()
    runs = []
    for run_dir in req.get("run_dirs") or []:
        runs.append(probe_one(os.path.expanduser(str(run_dir)), boot_now, now))
    return {"runs": runs, "boot_id": boot_now, "now": now}


# ---------------------------------------------------------------------------------------------
# cancel and tail


def verb_cancel(req: Rec) -> Rec:
    run_dir = os.path.expanduser(str(req["run_dir"]))
    grace_s = float(req.get("grace_s", 30))
    launch = read_json(os.path.join(run_dir, "launch.json"))
    if os.path.exists(os.path.join(run_dir, "exit.json")) or not isinstance(launch, dict):
        return {"signalled": None, "note": "the run is not running"}
    cancel_path = os.path.join(run_dir, "cancel.json")
    if not os.path.exists(cancel_path):
        write_json_atomic(cancel_path, {"requested_at": time.time(), "grace_s": grace_s})
    if is_alive(launch.get("supervisor_pid"), launch.get("supervisor_start_ticks")):
        # The supervisor forwards TERM to the job's group and sends KILL after the grace.
        os.kill(int(launch["supervisor_pid"]), signal.SIGTERM)
        return {"signalled": "supervisor", "grace_s": grace_s}
    if is_alive(launch.get("pid"), launch.get("start_ticks")):
        os.killpg(int(launch["pgid"]), signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and is_alive(
            launch.get("pid"), launch.get("start_ticks")
        ):
            time.sleep(0.1)
        if is_alive(launch.get("pid"), launch.get("start_ticks")):
            os.killpg(int(launch["pgid"]), signal.SIGKILL)
            return {"signalled": "job", "escalated": True}
        return {"signalled": "job", "escalated": False}
    return {"signalled": None, "note": "neither the supervisor nor the job is alive"}


def verb_tail(req: Rec) -> Rec:
    """Log bytes from ``offset`` (or the last ``lines`` lines), so a follower never duplicates."""
    run_dir = os.path.expanduser(str(req["run_dir"]))
    path = os.path.join(run_dir, "stdout.log")
    max_bytes = int(req.get("max_bytes", 1 << 20))
    ended = os.path.exists(os.path.join(run_dir, "exit.json"))
    try:
        size = os.path.getsize(path)
    except OSError:
        return {"data_b64": "", "offset": 0, "size": 0, "ended": ended}
    offset = req.get("offset")
    with open(path, "rb") as f:
        if offset is None:
            want = int(req.get("lines", 10))
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(size - start)
            if want >= 0:
                # Cut at the start of the last `want` lines, keeping the bytes exactly as they
                # are: stripping newlines first dropped trailing blank lines, and `logs -f`
                # (which continues from `end`) then never printed them.
                pos = len(data) - 1 if data.endswith(b"\n") else len(data)
                for _ in range(want):
                    pos = data.rfind(b"\n", 0, pos)
                    if pos < 0:
                        break
                data = data[pos + 1 :] if want else b""
            end = size
        else:
            offset = min(int(offset), size)
            f.seek(offset)
            data = f.read(max_bytes)
            end = offset + len(data)
    return {
        "data_b64": base64.b64encode(data).decode("ascii"),
        "offset": end,
        "size": size,
        "ended": ended,
    }


def sha256_file(path: str) -> str:
    """Streamed SHA-256 (bounded memory for multi-GB files)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_deploy(workdir: str, manifest: Rec) -> list[str]:
    """Files of the deploy manifest that are missing or differ on the box (U42)."""
    problems = []
    for rel, want in sorted(manifest.items()):
        if rel.startswith("/") or ".." in rel.split("/"):
            problems.append(f"{rel!r}: not a relative path inside the workdir")
            continue
        path = os.path.join(workdir, rel)
        try:
            size = os.path.getsize(path)
        except OSError:
            problems.append(f"{rel!r} is missing on the box")
            continue
        if size != want["size"] or sha256_file(path) != want["sha256"]:
            problems.append(f"{rel!r} differs on the box")
    return problems


def verb_verify_deploy(req: Rec) -> Rec:
    workdir = os.path.expanduser(str(req["workdir"]))
    return {"problems": check_deploy(workdir, req.get("manifest") or {})}


VERBS = {
    "launch": verb_launch,
    "probe": verb_probe,
    "cancel": verb_cancel,
    "tail": verb_tail,
    "verify_deploy": verb_verify_deploy,
}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "supervise":
        return _Supervisor(argv[2]).run()
    if len(argv) != 2 or argv[1] not in VERBS:
        sys.stdout.write(
            json.dumps({"ok": False, "error": "usage: box.py {{{}}}".format(",".join(VERBS))})
        )
        return 2
    try:
        req = json.loads(sys.stdin.read() or "{}")
        if not isinstance(req, dict):
            raise AgentError("the request must be a JSON object")
        reply = {"ok": True, "result": VERBS[argv[1]](req), "agent_version": AGENT_VERSION}
    except AgentError as exc:
        reply = {"ok": False, "error": str(exc)}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reply = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
