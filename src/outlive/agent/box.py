"""outlive's box-side agent: one stdlib-only file (Python >= 3.8) run by the transport on the box.

Protocol: ``python3 box.py VERB`` reads one JSON request on stdin and prints one JSON reply on
stdout, ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "<one sentence>"}``. Every
name, path and command travels inside the JSON, never through a shell (hostile names are data).

Verbs: ``launch`` (write the run dir, start the supervisor, return once the job runs), ``probe``
(state of many runs in one call), ``cancel`` (TERM, then KILL after the grace), ``tail`` (log bytes
from an offset, for ``logs -f`` that survives connection drops). ``supervise RUN_DIR`` is internal:
the supervisor, in its own session, runs the job in its own process group, forwards
TERM/INT/USR1/USR2 to it and writes ``exit.json`` atomically when it ends. ``serve`` keeps one
agent alive for a resident client and answers the read-only verbs (probe, tail) one JSON line per
request line, so a look costs one round trip on an open channel instead of a new session.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import shlex
import shutil
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
    """A failure reported to the client as one sentence, with a kind the client can act on."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


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


def expand(path: str) -> str:
    """A path from the client as the box reads it: ~ and $VARS expanded, made absolute."""
    return os.path.abspath(os.path.expandvars(os.path.expanduser(path)))


def verb_expand(req: Rec) -> Rec:
    return {"paths": [expand(str(p)) for p in req.get("paths") or []]}


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
    # Slurm (issue 7): checked before anything is created; sbatch replaces the supervisor.
    slurm = slurm_launch_fields(req) if req.get("backend") == "slurm" else None
    if slurm is not None and req.get("cells") is not None:
        return slurm_launch_array(req)  # one job array, a run dir per cell
    run_id = _check_run_id(req.get("run_id"))
    name = check_name(req.get("name"))
    command = req.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise AgentError("the command must be a non-empty list of strings")
    if any("\x00" in a for a in command):
        raise AgentError("the command contains a NUL byte, which no program can receive")
    workdir = expand(str(req["workdir"]))
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
                f"({shown}); run `outlive push` again",
                kind="deploy_mismatch",
            )
    runs_dir = os.path.join(workdir, ".outlive", "runs")
    os.makedirs(runs_dir, exist_ok=True)
    _ignore_outlive_dir(os.path.join(workdir, ".outlive"))
    run_dir = os.path.join(runs_dir, run_id)
    os.mkdir(run_dir)  # fails if the id exists: a run dir is never reused
    durable_root = expand(str(req.get("durable") or os.path.join(workdir, ".outlive", "durable")))
    ckpt_dir = os.path.join(durable_root, name)
    os.makedirs(ckpt_dir, exist_ok=True)
    spec = {
        "run_id": run_id,
        "name": name,
        "command": command,
        "env": _with_hf_home({str(k): str(v) for k, v in (req.get("env") or {}).items()}, req),
        "workdir": workdir,
        "ckpt_dir": ckpt_dir,
        "target": req.get("target"),
        "profile": req.get("profile"),
        "pythonpath": req.get("pythonpath") or _bundle_dir(),
        "secrets": [str(x) for x in req.get("secrets") or []],
        "detach": _check_detach(req.get("detach") or "setsid"),
        "spot_grace_s": req.get("spot_grace_s"),
        "mtbf_s": req.get("mtbf_s"),
        "kill_grace_s": req.get("kill_grace_s", 30),
        "created_at": req.get("created_at") or time.time(),
        "agent_version": AGENT_VERSION,
    }
    if slurm is not None:
        spec.update(slurm)
    run_json = os.path.join(run_dir, "run.json")
    write_json_atomic(run_json, spec)
    os.chmod(run_json, 0o444)  # the spec is written once, never edited (U2)
    if slurm is not None:
        return slurm_submit(run_dir, spec, req)

    if spec["detach"] == "tmux":
        ready = _start_in_tmux(run_dir, run_id)
    else:
        read_fd, write_fd = os.pipe()
        _start_supervisor(run_dir, write_fd)
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


def _check_detach(detach: object) -> str:
    if detach not in ("setsid", "tmux"):
        raise AgentError(f"unknown detach primitive {detach!r}; use setsid or tmux")
    if detach == "tmux" and not shutil.which("tmux"):
        raise AgentError("tmux is not installed on the box; use --detach-with setsid (the default)")
    return str(detach)


def tmux_session(run_id: str) -> str:
    return "outlive-" + run_id


def _start_in_tmux(run_dir: str, run_id: str) -> Rec | None:
    """An attachable run: window 'log' follows the job's output, window 'supervisor' runs the same
    supervisor as setsid mode; the session ends when the run does. Readiness is launch.json."""
    session = tmux_session(run_id)
    open(
        os.path.join(run_dir, "stdout.log"), "ab"
    ).close()  # so the log window has a file to follow
    log = shlex.quote(os.path.join(run_dir, "stdout.log"))
    sup = " ".join(
        shlex.quote(a) for a in (sys.executable, os.path.abspath(__file__), "supervise", run_dir)
    )
    slog = shlex.quote(os.path.join(run_dir, "supervisor.log"))
    for argv in (
        ["tmux", "new-session", "-d", "-s", session, "-n", "log", f"tail -n +1 -F {log}"],
        ["tmux", "new-window", "-d", "-t", session, "-n", "supervisor", f"{sup} >>{slog} 2>&1"],
    ):
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", errors="replace").strip()
            raise AgentError(f"tmux could not start the run ({err}); try --detach-with setsid")
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while time.monotonic() < deadline:
        launch = read_json(os.path.join(run_dir, "launch.json"))
        if isinstance(launch, dict) and "_unreadable" not in launch:
            launch["tmux_session"] = session
            return launch
        time.sleep(0.01)
    return None


def _start_supervisor(run_dir: str, ready_fd: int) -> None:
    """Fork the supervisor off this agent (no second interpreter start) into a new session with
    stdin from /dev/null, so an SSH hang-up cannot reach it; it reports on ``ready_fd``."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return
    code = 70
    try:
        os.setsid()
        os.chdir(run_dir)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(
            os.path.join(run_dir, "supervisor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, ready_fd)  # nothing of the agent's connection may stay open here
        os.closerange(ready_fd + 1, 1 << 16)
        os.environ["OUTLIVE_READY_FD"] = str(ready_fd)
        code = _Supervisor(run_dir).run()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _with_hf_home(env: dict[str, str], req: Rec) -> dict[str, str]:
    """HF caches where the profile says (off a small container disk, RP11), unless user-set."""
    if req.get("hf_home") and "HF_HOME" not in env:
        env["HF_HOME"] = expand(str(req["hf_home"]))
    return env


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
    secrets_dir = expand("~/.outlive/secrets")
    env["OUTLIVE_SECRETS_DIR"] = secrets_dir
    for name in spec.get("secrets") or []:
        # Read from the 0600 file into the job's own environment: never onto a command line (U34).
        value = _read_text(os.path.join(secrets_dir, name))
        if value is not None:
            env[name] = value
        else:
            sys.stderr.write(f"outlive: secret {name} was not pushed to this box; it is unset\n")
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
        if spec.get("detach") == "tmux":  # the run is over: so is its attachable session
            subprocess.run(
                ["tmux", "kill-session", "-t", tmux_session(spec["run_id"])],
                capture_output=True,
                timeout=10,
                check=False,
            )
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
    if spec.get("backend") == "slurm":
        return slurm_probe([run_dir], now)[run_dir]
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
    # A supervisor can finish writing exit.json between our two reads: look once more. Only
    # when the first read found no file: an unreadable exit.json would recurse forever and
    # break the probe of every run on the target.
    if exit_rec is None and os.path.exists(os.path.join(run_dir, "exit.json")):
        return probe_one(run_dir, boot_now, now)
    if exit_rec is not None:
        out["error"] = f"the exit record {os.path.join(run_dir, 'exit.json')} is unreadable"
    out["state"] = "vanished"
    out["diagnosis"] = diagnose(launch, None, boot_now, read_oom_kill(launch.get("memory_cgroup")))
    return out


def verb_probe(req: Rec) -> Rec:
    now = time.time()
    boot_now = boot_id()
    run_dirs = [os.path.expanduser(str(d)) for d in req.get("run_dirs") or []]
    slurm = slurm_probe(run_dirs, now)  # one scheduler call for all Slurm runs (issue 7)
    runs = []
    for run_dir in run_dirs:
        runs.append(slurm.get(run_dir) or probe_one(run_dir, boot_now, now))
    return {"runs": runs, "boot_id": boot_now, "now": now}


# ---------------------------------------------------------------------------------------------
# cancel and tail


def verb_cancel(req: Rec) -> Rec:
    run_dir = os.path.expanduser(str(req["run_dir"]))
    grace_s = float(req.get("grace_s", 30))
    if _is_slurm_run(run_dir) is not None:
        return slurm_cancel(run_dir, grace_s)
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
    ended = os.path.exists(os.path.join(run_dir, "exit.json")) or slurm_tail_ended(run_dir)
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
    return _hash_counted(path)[0]


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


# Filesystems that other machines can read: a secret must never land on one (U34).
NETWORK_FS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "lustre",
    "gpfs",
    "glusterfs",
    "beegfs",
    "9p",
    "virtiofs",
    "fuse.sshfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.rclone",
    "fuse.juicefs",
)
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


def mount_of(path: str, mounts_text: str) -> tuple[str, str]:
    """(mount point, fs type) of the deepest mount containing ``path`` (from /proc/mounts)."""
    best = ("/", "unknown")
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, parts[2])
    return best


def verb_secret_put(req: Rec) -> Rec:
    """Store a secret that arrived on stdin in a 0600 file on box-local disk; the value is never
    put in an argv, an env of a command line, a log or an error message (U34)."""
    name = str(req.get("name", ""))
    if not SECRET_NAME_RE.match(name):
        raise AgentError(
            f"secret name {name!r} must be letters, digits, '_', '.' or '-' (like HF_TOKEN)"
        )
    value = req.get("value")
    if not isinstance(value, str) or not value:
        raise AgentError("the secret value is empty; pipe it on stdin or use --from-env VAR")
    directory = expand(str(req.get("dir") or "~/.outlive/secrets"))
    real = os.path.realpath(directory)
    for refused in req.get("refuse_under") or []:
        root = os.path.realpath(expand(str(refused)))
        if root != "/" and (real == root or real.startswith(root.rstrip("/") + "/")):
            raise AgentError(
                f"refusing to store a secret under {root}, which the profile marks shared or "
                "durable (U34); set another secrets dir on box-local disk"
            )
    probe = real
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    point, fstype = mount_of(probe, _read_text("/proc/mounts") or "")
    if fstype in NETWORK_FS or fstype.startswith("fuse."):
        raise AgentError(
            f"refusing to store a secret on {point} ({fstype}), a filesystem other machines "
            "can read (U34); use a box-local directory"
        )
    os.makedirs(real, mode=0o700, exist_ok=True)
    os.chmod(real, 0o700)
    final = os.path.join(real, name)
    tmp = os.path.join(real, f".{name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(real)
    return {"path": final, "mode": "0600", "fs": fstype, "mount": point}


def verb_verify_deploy(req: Rec) -> Rec:
    return {"problems": check_deploy(expand(str(req["workdir"])), req.get("manifest") or {})}


# ---------------------------------------------------------------------------------------------
# audit and doctor: raw facts about the box for `outlive up` and `outlive doctor`.
# Everything here collects facts and judges nothing (the client's outlive.diagnose does that).
# Every external command runs with a timeout; a missing command is reported as missing and
# nothing here raises, so one broken tool never hides the other facts.

NVIDIA_SMI_TIMEOUT_S = 10.0  # a wedged driver can hang nvidia-smi for minutes
TORCH_PROBE_TIMEOUT_S = 30.0  # importing torch and creating a CUDA context is slow, not that slow
DMESG_TIMEOUT_S = 10.0
CMD_OUTPUT_MAX_BYTES = 256 * 1024  # what one command's stdout/stderr may add to a reply
DMESG_READ_MAX_BYTES = 16 * 1024 * 1024  # the kernel ring buffer, read whole before filtering
DMESG_MAX_LINES = 500  # matching kernel lines sent back (the newest)
VRAM_SCAN_BUDGET_S = 5.0  # walking /proc/*/fd on a box with many processes
DMON_SAMPLES = 5  # seconds of `nvidia-smi dmon`: one snapshot of utilisation lies (U21)
CMD_TAIL_CHARS = 2000  # stderr kept from a failed command

# Fields of `nvidia-smi --query-gpu`; an unknown field fails the whole query, so these are
# long-standing ones and GPU_QUERY_FIELDS_MIN is the fallback for an old driver.
GPU_QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "clocks.sm",
    "clocks.max.sm",
    "clocks.default_applications.graphics",
    "pstate",
)
GPU_QUERY_FIELDS_MIN = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
)
COMPUTE_APP_FIELDS = ("pid", "process_name", "used_gpu_memory", "gpu_uuid")
DMESG_INTERESTING = re.compile(
    r"xid|killed process|kill process|out of memory|oom-kill|oom_reaper|invoked oom-killer",
    re.IGNORECASE,
)
ENV_FACTS = (
    "HOME",
    "HF_HOME",
    "HF_HUB_CACHE",
    "PIP_CACHE_DIR",
    "XDG_CACHE_HOME",
    "TMPDIR",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
)

_TORCH_PROBE = r"""
import json, warnings
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        import torch
    except Exception as exc:
        out["import_error"] = "%s: %s" % (type(exc).__name__, exc)
    else:
        out["torch"] = str(torch.__version__)
        out["cuda"] = torch.version.cuda
        try:
            out["available"] = bool(torch.cuda.is_available())
            if out["available"]:
                n = torch.cuda.device_count()
                out["device_count"] = n
                out["names"] = [torch.cuda.get_device_name(i) for i in range(n)]
                out["capabilities"] = [list(torch.cuda.get_device_capability(i)) for i in range(n)]
                out["arch_list"] = list(torch.cuda.get_arch_list())
        except Exception as exc:
            out["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    out["warnings"] = [str(w.message)[:500] for w in caught][:5]
print(json.dumps(out))
"""


def _clip(data: bytes, limit: int = CMD_OUTPUT_MAX_BYTES) -> str:
    return data[-limit:].decode("utf-8", errors="replace")


def run_cmd(argv: List[str], timeout_s: float, keep_bytes: int = CMD_OUTPUT_MAX_BYTES) -> Rec:
    """Run one command with a deadline: {argv, missing, rc, timed_out, stdout, stderr, error}."""
    import shutil

    out: Rec = {"argv": argv, "missing": False, "rc": None, "timed_out": False}
    out.update({"stdout": "", "stderr": "", "error": None})
    if shutil.which(argv[0]) is None:
        out["missing"] = True
        out["error"] = f"{argv[0]} is not installed (not on PATH)"
        return out
    env = dict(os.environ)
    env["LC_ALL"] = "C"  # error texts in English, numbers with a dot
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        out["timed_out"] = True
        out["stdout"] = _clip(exc.stdout or b"", keep_bytes)
        out["error"] = f"{argv[0]} did not answer within {timeout_s:.0f} s"
        return out
    except OSError as exc:
        out["error"] = f"{argv[0]} could not run: {exc.strerror or exc}"
        return out
    out["rc"] = done.returncode
    out["stdout"] = _clip(done.stdout, keep_bytes)
    out["stderr"] = _clip(done.stderr, CMD_TAIL_CHARS)
    if done.returncode != 0:
        text = (out["stderr"] or out["stdout"]).strip().splitlines()
        out["error"] = f"{argv[0]} exited {done.returncode}" + (f": {text[-1]}" if text else "")
    return out


def _unescape_mount(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_of(path: str) -> Rec:
    """The mount (point, fstype, source) holding ``path``: the longest mount-point prefix."""
    best: Rec = {"mount_point": None, "fstype": None, "source": None}
    real = os.path.realpath(path)
    best_len = -1
    for line in (_read_text("/proc/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if not sep or len(parts) < 5 or len(rparts) < 2:
            continue
        point = _unescape_mount(parts[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best_len:  # a later mount on the same point hides earlier
            best_len = len(point)
            best = {"mount_point": point, "fstype": rparts[0], "source": _unescape_mount(rparts[1])}
    return best


def fs_facts(path: str) -> Rec:
    """Free bytes and inodes (statvfs, what ``df -h`` and ``df -i`` print) of the filesystem that
    holds ``path``, measured at its nearest existing ancestor when it does not exist yet (U7)."""
    path = os.path.expanduser(path)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if not parent or parent == probe:
            break
        probe = parent
    out: Rec = {"path": path, "measured_at": probe, "exists": probe == path}
    try:
        st = os.statvfs(probe)
        out["device"] = os.stat(probe).st_dev
    except OSError as exc:
        out["error"] = f"statvfs({probe}) failed: {exc.strerror or exc}"
        return out
    out.update(
        {
            "total_bytes": st.f_blocks * st.f_frsize,
            "free_bytes": st.f_bavail * st.f_frsize,  # what an unprivileged writer may use
            "total_inodes": st.f_files,
            "free_inodes": st.f_favail,
            "readonly": bool(st.f_flag & getattr(os, "ST_RDONLY", 1)),
        }
    )
    out.update(_mount_of(probe))
    return out


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0].strip() if text and text.strip() else None


def cgroup_facts(pid: int | None = None) -> Rec:
    """The memory and CPU cgroup files of ``pid`` (default: this agent), raw (U9, U40, U41)."""
    who = str(pid) if pid else "self"
    dirs = cgroup_dirs(
        _read_text(f"/proc/{who}/mountinfo") or "", _read_text(f"/proc/{who}/cgroup") or ""
    )
    return _cgroup_files(dirs.get("memory"), dirs.get("cpu"))


def _cgroup_files(memory_dir: str | None, cpu_dir: str | None) -> Rec:
    out: Rec = {"memory_dir": memory_dir, "cpu_dir": cpu_dir, "files": {}}
    names = (
        (memory_dir, ("memory.max", "memory.current", "memory.peak", "memory.events")),
        (memory_dir, ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.oom_control")),
        (memory_dir, ("memory.max_usage_in_bytes",)),
        (cpu_dir, ("cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us")),
    )
    for directory, files in names:
        if not directory:
            continue
        for name in files:
            text = _read_text(os.path.join(directory, name))
            if text is not None:
                out["files"][name] = text.strip()[:4000]
    out["oom_kill"] = read_oom_kill(memory_dir)
    out["quota_cores"] = cpu_quota_cores(cpu_dir)
    return out


def host_facts() -> Rec:
    meminfo = _read_text("/proc/meminfo") or ""
    mem_total = None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                mem_total = int(fields[1]) * 1024
    affinity = None
    getaffinity = getattr(os, "sched_getaffinity", None)  # Linux only
    if getaffinity is not None:
        with contextlib.suppress(OSError):
            affinity = len(getaffinity(0))
    uptime = _first_line(_read_text("/proc/uptime"))
    btime = None
    for line in (_read_text("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            btime = int(line.split()[1])
    return {
        "hostname": os.uname().nodename,
        "cpu_count": os.cpu_count(),
        "affinity_cpus": affinity,
        "mem_total_bytes": mem_total,
        "boot_id": boot_id(),
        "btime": btime,
        "uptime_s": float(uptime.split()[0]) if uptime else None,
        "now": time.time(),
        "pid": os.getpid(),
    }


def gpu_facts(dmon_samples: int = 0) -> Rec:
    """nvidia-smi's views: per-GPU query, compute processes, -q -d PERFORMANCE (clock event /
    throttle reasons), and ``dmon`` samples when asked. Stops after the first call that hangs."""
    out: Rec = {"dev_nodes": sorted(_dev_nvidia())}
    fields: tuple[str, ...] = GPU_QUERY_FIELDS
    query = run_cmd(_query_argv(fields), NVIDIA_SMI_TIMEOUT_S)
    if query["rc"] not in (0, None) and "valid field" in (query["stdout"] + query["stderr"]):
        fields = GPU_QUERY_FIELDS_MIN  # an older driver that lacks one of the fields
        query = run_cmd(_query_argv(fields), NVIDIA_SMI_TIMEOUT_S)
    out["fields"] = list(fields)
    out["query"] = query
    if query["rc"] != 0:
        return out  # missing, broken or hung: every further call would fail the same way
    out["apps"] = run_cmd(
        [
            "nvidia-smi",
            "--query-compute-apps=" + ",".join(COMPUTE_APP_FIELDS),
            "--format=csv,noheader,nounits",
        ],
        NVIDIA_SMI_TIMEOUT_S,
    )
    out["app_fields"] = list(COMPUTE_APP_FIELDS)
    out["performance"] = run_cmd(["nvidia-smi", "-q", "-d", "PERFORMANCE"], NVIDIA_SMI_TIMEOUT_S)
    if dmon_samples > 0:
        out["dmon"] = run_cmd(
            ["nvidia-smi", "dmon", "-s", "pucv", "-c", str(dmon_samples), "-d", "1"],
            NVIDIA_SMI_TIMEOUT_S + dmon_samples,
        )
    return out


def _query_argv(fields: tuple[str, ...]) -> List[str]:
    return ["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]


def _dev_nvidia() -> List[str]:
    try:
        return ["/dev/" + n for n in os.listdir("/dev") if n.startswith("nvidia")]
    except OSError:
        return []


def torch_facts(python: str) -> Rec:
    """torch's side of the CUDA triangle (U28): its version, the CUDA it was built for, the
    devices it sees and the architectures it carries kernels for."""
    done = run_cmd([python, "-c", _TORCH_PROBE], TORCH_PROBE_TIMEOUT_S, keep_bytes=64 * 1024)
    out: Rec = {"python": python, "run": {k: v for k, v in done.items() if k != "stdout"}}
    lines = done["stdout"].strip().splitlines()
    if done["rc"] == 0 and lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
        if isinstance(result, dict):
            out["result"] = result
    return out


def dmesg_facts() -> Rec:
    """Kernel log lines about OOM kills and GPU Xid errors, or why they could not be read."""
    done = run_cmd(["dmesg"], DMESG_TIMEOUT_S, keep_bytes=DMESG_READ_MAX_BYTES)
    lines = done["stdout"].splitlines()
    readable = done["rc"] == 0 and bool(lines)
    if done["rc"] == 0 and not lines:
        done["error"] = "dmesg printed nothing (an empty or inaccessible kernel log)"
    restrict = _first_line(_read_text("/proc/sys/kernel/dmesg_restrict"))
    matching = [line for line in lines if DMESG_INTERESTING.search(line)]
    return {
        "readable": readable,
        "error": done["error"],
        "missing": done["missing"],
        "timed_out": done["timed_out"],
        "dmesg_restrict": restrict,
        "total_lines": len(lines),
        "first_line": lines[0] if lines else None,
        "last_line": lines[-1] if lines else None,
        "lines": matching[-DMESG_MAX_LINES:],
        "lines_dropped": max(0, len(matching) - DMESG_MAX_LINES),
    }


def _proc_stat(pid: str) -> List[str] | None:
    stat = _read_text(f"/proc/{pid}/stat")
    if not stat or ")" not in stat:
        return None
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    return [comm, *stat[stat.rfind(")") + 2 :].split()]


def nvidia_holders(budget_s: float = VRAM_SCAN_BUDGET_S) -> Rec:
    """Processes with a /dev/nvidia* device open, found through /proc/*/fd (what ``fuser -v
    /dev/nvidia*`` shows), so VRAM that nvidia-smi cannot attribute gets a name (U11).
    A report only: nothing here signals any process."""
    holders = []
    unreadable = 0
    truncated = False
    deadline = time.monotonic() + budget_s
    me = os.getpid()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        return {"error": f"cannot list /proc: {exc.strerror or exc}", "holders": []}
    for pid in pids:
        if time.monotonic() > deadline:
            truncated = True
            break
        if int(pid) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except PermissionError:
            unreadable += 1
            continue
        except OSError:
            continue  # exited meanwhile
        devices = set()
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/nvidia"):
                devices.add(target)
        if not devices:
            continue
        stat = _proc_stat(pid) or []
        cmdline = (_read_text(f"/proc/{pid}/cmdline") or "").replace("\x00", " ").strip()
        holders.append(
            {
                "pid": int(pid),
                "comm": stat[0] if stat else None,
                "state": stat[1] if len(stat) > 1 else None,
                "ppid": int(stat[2]) if len(stat) > 2 else None,
                "pgid": int(stat[3]) if len(stat) > 3 else None,
                "devices": sorted(devices),
                "cmdline": cmdline[:300],
            }
        )
    return {"holders": holders, "unreadable": unreadable, "truncated": truncated}


def group_threads(pgid: int | None) -> Rec:
    """Processes of the job's process group with their thread counts and runnable threads, and
    the OMP/MKL thread caps the job started with (U40)."""
    if not pgid:
        return {"procs": [], "error": "no process group recorded"}
    procs = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        return {"procs": [], "error": f"cannot list /proc: {exc.strerror or exc}"}
    for pid in pids:
        stat = _proc_stat(pid)
        if not stat or len(stat) < 19 or stat[3] != str(pgid) or stat[1] in ("Z", "X"):
            continue
        running = 0
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            tstat = _proc_stat(f"{pid}/task/{tid}")
            if tstat and len(tstat) > 1 and tstat[1] == "R":
                running += 1
        procs.append(
            {"pid": int(pid), "comm": stat[0], "threads": int(stat[18]), "running": running}
        )
    env_caps = {}
    environ = _read_text(f"/proc/{pgid}/environ")
    if environ is not None:
        for item in environ.split("\x00"):
            key, sep, value = item.partition("=")
            if sep and key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env_caps[key] = value
    return {"procs": procs, "env": env_caps, "env_readable": environ is not None}


def _cache_paths(overrides: Rec) -> Rec:
    """Where the Hugging Face and pip caches of a job would land (RP11): the target's env first,
    then this box's environment, then the tools' defaults under ~/.cache."""

    def env(key: str) -> str | None:
        value = overrides.get(key)
        return str(value) if value else os.environ.get(key) or None

    cache_home = env("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    hf = env("HF_HOME") or os.path.join(cache_home, "huggingface")
    pip = env("PIP_CACHE_DIR") or os.path.join(cache_home, "pip")
    return {"hf_home": os.path.expanduser(hf), "pip_cache": os.path.expanduser(pip)}


def verb_audit(req: Rec) -> Rec:
    """Phase-0 facts (``outlive up``): python, GPU and torch, disks and inodes of the workdir,
    durable and cache paths, cgroup memory and CPU quota, tools present."""
    import platform
    import shutil

    overrides = req.get("env") or {}
    caches = _cache_paths(overrides if isinstance(overrides, dict) else {})
    paths = {str(k): str(v) for k, v in (req.get("paths") or {}).items()}
    paths.update(caches)
    gpu = gpu_facts()
    has_gpu = gpu["query"]["rc"] == 0 or bool(gpu["dev_nodes"])
    python = str(req.get("python") or sys.executable)
    return {
        "python": {
            "executable": sys.executable,
            "version": platform.python_version(),
            "version_info": list(sys.version_info[:3]),
        },
        "host": host_facts(),
        "env": {k: os.environ.get(k) for k in ENV_FACTS},
        "env_overrides": {k: str(v) for k, v in overrides.items() if k in ENV_FACTS},
        "caches": caches,
        "disks": {role: fs_facts(p) for role, p in paths.items()},
        "cgroup": cgroup_facts(),
        "tools": {name: shutil.which(name) for name in ("tmux", "rsync", "nvidia-smi", "dmesg")},
        "gpu": gpu,
        "torch": torch_facts(python) if req.get("torch", True) else None,
        "vram_holders": nvidia_holders() if has_gpu else None,
    }


def verb_doctor(req: Rec) -> Rec:
    """Facts for ``outlive doctor RUN``: the probe (state and vanished ladder), the kernel log,
    the GPU, VRAM holders, disks of the run and checkpoint dirs, threads vs the CPU quota."""
    run_dir = os.path.expanduser(str(req["run_dir"]))
    now = time.time()
    probe = probe_one(run_dir, boot_id(), now)
    spec = read_json(os.path.join(run_dir, "run.json"))
    launch = read_json(os.path.join(run_dir, "launch.json"))
    exit_rec = read_json(os.path.join(run_dir, "exit.json"))
    launch = launch if isinstance(launch, dict) else {}
    running = probe.get("state") == "running"
    job_alive = running and is_alive(launch.get("pid"), launch.get("start_ticks"))
    job_pid = launch.get("pid") if job_alive else None
    ckpt_dir = spec.get("ckpt_dir") if isinstance(spec, dict) else None
    gpu = gpu_facts(int(req.get("dmon_samples", DMON_SAMPLES)) if running else 0)
    has_gpu = gpu["query"]["rc"] == 0 or bool(gpu["dev_nodes"])
    disks = {"run_dir": fs_facts(run_dir)}
    if ckpt_dir:
        disks["ckpt_dir"] = fs_facts(str(ckpt_dir))
    return {
        "probe": probe,
        "launch": launch,
        "exit": exit_rec if isinstance(exit_rec, dict) else None,
        "host": host_facts(),
        "run_cgroup": _cgroup_files(launch.get("memory_cgroup"), None),
        "job_cgroup": cgroup_facts(job_pid) if job_pid else None,
        "dmesg": dmesg_facts() if req.get("dmesg", True) else None,
        "gpu": gpu,
        "vram_holders": nvidia_holders() if has_gpu else None,
        "disks": disks,
        "threads": group_threads(launch.get("pgid")) if job_pid else None,
    }


# ---------------------------------------------------------------------------------------------
# >>> pull manifests (issue 6: pull, verify and the teardown gate) -----------------------------
# Every file under a run's result roots with its size and SHA-256, in one round trip. The
# manifest is canonical JSON (sorted keys, no spaces, ASCII) named by its own SHA-256, so the
# same files under the same roots always give the same name, and the client recomputes the hash
# from the reply to prove both sides agree. Hashing is streamed in 1 MiB blocks (bounded memory
# for multi-GB checkpoints) on a few threads (hashlib releases the GIL on large updates).

MANIFEST_FORMAT = "outlive-manifest/1"
MANIFEST_MAX_WORKERS = 8
MANIFEST_SAMPLE_BYTES = 65536  # read to estimate how well a file compresses (U15)
MANIFEST_SAMPLE_MIN_BYTES = 4096
# Temp names of atomic writers that are still in flight (``.NAME.tmp-PID[-TOKEN]``): outlive's
# Checkpointer and the example's final.npz write these and rename them into place (U6).
_INFLIGHT_TMP_RE = re.compile(r"^\..+\.tmp-\d+(-[0-9a-f]+)?$")


def manifest_canonical(roots: List[Rec], files: List[Rec]) -> bytes:
    """The bytes a manifest's name is the SHA-256 of; the client builds the same bytes."""
    doc = {"format": MANIFEST_FORMAT, "roots": roots, "files": files}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label or label.startswith("/"):
        raise AgentError(f"result root label {label!r} must be a relative path")
    if any(part in ("", ".", "..") for part in label.split("/")):
        raise AgentError(f"result root label {label!r} must not hold '.', '..' or '//'")
    return label


def _hash_counted(path: str) -> tuple[str, int]:
    """SHA-256 and the number of bytes actually read (a file still being written shows here)."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _zsample(path: str) -> float | None:
    """Compressed / raw size of the file's first 64 KiB at zlib level 1 (None: too small)."""
    import zlib

    try:
        with open(path, "rb") as f:
            head = f.read(MANIFEST_SAMPLE_BYTES)
    except OSError:
        return None
    if len(head) < MANIFEST_SAMPLE_MIN_BYTES:
        return None
    return round(len(zlib.compress(head, 1)) / len(head), 3)


def _list_root(label: str, root: str, entries: List[Rec], skipped: List[str]) -> str:
    """Append the entries under one result root; return what the root is on the box.

    The root itself is followed when it is a symlink (a durable dir is often a link to a
    volume); links inside it are listed as links, never followed. Each entry carries ``rel``,
    its path below the root (empty for a root that is a single file)."""
    import stat as st

    def add(rel: str, path: str) -> None:
        name = label + "/" + rel if rel else label
        try:
            info = os.lstat(path) if rel else os.stat(path)
        except OSError:
            skipped.append(name + " (vanished while listed)")
            return
        entry: Rec = {"path": name, "root": label, "rel": rel, "abs": path}
        if st.S_ISLNK(info.st_mode):
            entry["link"] = os.readlink(path)
        elif st.S_ISREG(info.st_mode):
            entry.update(size=info.st_size, mtime_ns=info.st_mtime_ns)
        else:
            skipped.append(name + " (not a regular file, directory or symlink)")
            return
        entries.append(entry)

    if os.path.isfile(root):
        add("", root)
        return "file"
    if not os.path.isdir(root):
        return "missing"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                add(prefix + d, os.path.join(dirpath, d))  # os.walk does not enter it
        for name in sorted(filenames):
            if not _INFLIGHT_TMP_RE.match(name):
                add(prefix + name, os.path.join(dirpath, name))
    return "dir"


def _store_manifest(store_dir: str, digest: str, data: bytes) -> str:
    """Write the manifest once as ``<store_dir>/manifests/<sha256>.json``, read-only."""
    directory = os.path.join(expand(store_dir), "manifests")
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, digest + ".json")
    if os.path.exists(final):
        return final  # same name, same bytes: it is never rewritten
    tmp = os.path.join(directory, f".{digest}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(directory)
    return final


def build_manifest(spec: Rec) -> Rec:
    """One manifest: ``roots`` [{label, path}], ``hash`` (else a cheap roster with sizes),
    ``sample`` (compressibility per file), ``store_dir`` (keep the manifest there)."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.time()
    roots: List[Rec] = []
    described: List[Rec] = []
    entries: List[Rec] = []
    skipped: List[str] = []
    labels: set[str] = set()
    for raw in spec.get("roots") or []:
        label = _check_label(raw.get("label"))
        for other in labels:
            if label == other or label.startswith(other + "/") or other.startswith(label + "/"):
                raise AgentError(f"result roots {other!r} and {label!r} overlap")
        labels.add(label)
        path = expand(str(raw.get("path") or ""))
        kind = _list_root(label, path, entries, skipped)
        roots.append({"label": label, "path": path})
        described.append(
            {"label": label, "path": path, "real": os.path.realpath(path), "kind": kind}
        )
    entries.sort(key=lambda e: e["path"])
    regular = [e for e in entries if "size" in e]
    unstable: List[str] = []
    if spec.get("hash"):
        workers = max(1, min(MANIFEST_MAX_WORKERS, os.cpu_count() or 1, len(regular)))

        def one(entry: Rec) -> tuple[Rec, tuple[str, int] | None]:
            try:
                return entry, _hash_counted(entry["abs"])
            except OSError:
                return entry, None

        kept: List[Rec] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for entry, got in pool.map(one, regular):
                if got is None:
                    skipped.append(entry["path"] + " (vanished or unreadable while hashed)")
                    continue
                entry["sha256"], read = got
                if read != entry["size"]:
                    unstable.append(entry["path"])  # written to while we read it
                    entry["size"] = read
                kept.append(entry)
        drop = {id(e) for e in regular} - {id(e) for e in kept}
        entries = [e for e in entries if id(e) not in drop]
    if spec.get("sample"):
        for entry in regular:
            entry["zratio"] = _zsample(entry["abs"])
    out: Rec = {
        "roots": described,
        "skipped": skipped,
        "unstable": unstable,
        "files": [],
        "total_bytes": sum(int(e.get("size", 0)) for e in entries),
        "sha256": None,
        "stored": None,
    }
    canonical: List[Rec] = []
    for e in entries:
        if "link" in e:
            canonical.append({"path": e["path"], "link": e["link"]})
        elif spec.get("hash"):
            canonical.append({"path": e["path"], "size": e["size"], "sha256": e["sha256"]})
        out["files"].append({k: v for k, v in e.items() if k != "abs"})
    if spec.get("hash"):
        data = manifest_canonical(roots, canonical)
        import hashlib

        out["sha256"] = hashlib.sha256(data).hexdigest()
        if spec.get("store_dir"):
            out["stored"] = _store_manifest(str(spec["store_dir"]), out["sha256"], data)
    out["seconds"] = round(time.time() - started, 3)
    return out


def verb_manifest(req: Rec) -> Rec:
    """Manifests of several result-root sets plus the probe of some runs, in one round trip
    (``outlive pull`` asks for one set, ``outlive down`` for every run on the target)."""
    now = time.time()
    boot_now = boot_id()
    return {
        "manifests": [build_manifest(s) for s in req.get("sets") or []],
        "probes": [
            probe_one(os.path.expanduser(str(d)), boot_now, now)
            for d in req.get("probe_run_dirs") or []
        ],
        "hostname": os.uname().nodename if hasattr(os, "uname") else None,
        "now": now,
    }


# <<< pull manifests ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# >>> slurm (issue 7): sbatch as the detach primitive ---------------------------------------
# The client renders the batch script (outlive.backends.slurm); here, on the login host, the run
# dir is written as for any run, the script saved as job.sbatch and submitted with sbatch. The
# script's step is this file's ``supervise`` (the _SlurmSupervisor below) on the compute node, in
# the same run dir on the shared filesystem for every attempt (SLURM5). Records per run dir:
#   slurm.json           job id, the sbatch argv, submitted_at                 (written once)
#   launch.json          the current attempt (overwritten by each attempt)
#   attempts/<n>.json    how attempt n ended; n = SLURM_RESTART_COUNT (0 for the first)
#   exit.json            only once the run is over: never for an attempt that is requeued
#   slurm_end.json       the scheduler's terminal view, kept once seen (squeue forgets jobs)
# The probe reads these plus one squeue call (and sacct where accounting exists) for all job ids
# of the call and judges the state here (slurm_judge), so every caller of probe_one agrees.

SLURM_REQUEUE_EXIT = 75  # the Checkpointer's "saved, run me again"
SLURM_CMD_TIMEOUT_S = 20.0
SBATCH_SCRIPT_MAX_BYTES = 256 * 1024
SQUEUE_FIELDS = (
    "JobID",
    "ArrayJobID",
    "ArrayTaskID",
    "State",
    "Reason",
    "RestartCnt",
    "exit_code",
    "NodeList",
    "TimeLimit",
    "TimeUsed",
    "StartTime",
    "EndTime",
    "MinMemory",
)
SLURM_TERMINAL = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
)
SACCT_FIELDS = ("JobID", "State", "ExitCode", "MaxRSS", "ReqMem", "Elapsed", "NodeList")


def slurm_launch_fields(req: Rec) -> Rec:
    """Check a Slurm launch request before anything is created; the run.json additions."""
    script = req.get("sbatch_script")
    if not isinstance(script, str) or not script.startswith("#!/bin/bash\n"):
        raise AgentError("a Slurm launch needs the rendered batch script; this is a client bug")
    if "\x00" in script or len(script.encode("utf-8")) > SBATCH_SCRIPT_MAX_BYTES:
        raise AgentError("the batch script holds a NUL byte or is too large; this is a client bug")
    if shutil.which("sbatch") is None:
        raise AgentError(
            "sbatch is not on PATH on this host; set `host` to the cluster's login node, or "
            "load Slurm's module in the login shell's startup files",
            kind="no_sbatch",
        )
    return {"backend": "slurm", "detach": "sbatch"}


def _under_tmpdir(path: str) -> str | None:
    """This host's node-local $TMPDIR when ``path`` lies under it (SLURM5)."""
    tmp = os.environ.get("TMPDIR")
    if not tmp:
        return None
    root = os.path.realpath(tmp)
    real = os.path.realpath(path)
    if root != "/" and (real == root or real.startswith(root.rstrip("/") + "/")):
        return root
    return None


def slurm_submit(run_dir: str, spec: Rec, req: Rec) -> Rec:
    """Save the batch script as job.sbatch and submit it; the run dir goes if sbatch refuses.
    A cell of an array is only prepared here: slurm_launch_array submits all cells at once."""
    for what, path in (("run directory", run_dir), ("checkpoint directory", spec["ckpt_dir"])):
        tmp = _under_tmpdir(path)
        if tmp:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise AgentError(
                f"the {what} {path} is under $TMPDIR ({tmp}), node-local storage that is wiped "
                "when the job ends (SLURM5); put workdir and durable on the shared filesystem"
            )
    script_path = os.path.join(run_dir, "job.sbatch")
    with open(script_path, "w", encoding="utf-8") as f:
        f.write(str(req["sbatch_script"]))
    os.chmod(script_path, 0o555)
    if req.get("array_cell") is not None:
        return {"run_dir": run_dir, "ckpt_dir": spec["ckpt_dir"], "pid": None}
    argv = [
        "sbatch",
        "--parsable",
        "--chdir=" + run_dir,
        script_path,
        sys.executable,
        os.path.abspath(__file__),
        run_dir,
    ]
    try:
        job_id = _sbatch(argv, "job")
    except AgentError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    record = {"job_id": job_id, "argv": argv, "submitted_at": time.time()}
    write_json_atomic(os.path.join(run_dir, "slurm.json"), record)
    return {"run_dir": run_dir, "ckpt_dir": spec["ckpt_dir"], "pid": None, "job_id": job_id}


def _sbatch(argv: List[str], what: str) -> str:
    """Run ``sbatch --parsable ...``; the job id, or AgentError with sbatch's own words."""
    done = run_cmd(argv, SLURM_CMD_TIMEOUT_S, keep_bytes=64 * 1024)
    job_id = done["stdout"].strip().split(";")[0] if done["rc"] == 0 else ""
    if not re.match(r"^[0-9]+$", job_id):
        why = (done["stderr"] or done["stdout"] or done["error"] or "no output").strip()
        raise AgentError(
            f"sbatch refused the {what}: {why.splitlines()[-1] if why else 'no output'}",
            kind="sbatch_refused",
        )
    return job_id


def slurm_launch_array(req: Rec) -> Rec:
    """Prepare a run dir per cell (``<base>-<i>``) and submit them as one job array; cell i is
    array task i, whose log, records and checkpoints stay in its own run dir and durable path."""
    base = _check_run_id(req.get("run_id"))
    cells = req.get("cells")
    if not isinstance(cells, list) or not cells or not all(isinstance(c, dict) for c in cells):
        raise AgentError("an array launch needs a non-empty list of cells; this is a client bug")
    names = [check_name(c.get("name")) for c in cells]
    if len(set(names)) != len(names):
        raise AgentError("two cells of the array share a name, so they would share checkpoints")
    prepared: List[Rec] = []
    try:
        for i, cell in enumerate(cells):
            sub = {k: v for k, v in req.items() if k != "cells"}
            sub.update(run_id=f"{base}-{i}", name=cell["name"], command=cell.get("command"))
            sub["array_cell"] = i
            if i:
                sub.pop("deploy_manifest", None)  # checked once, for the first cell
            prepared.append(verb_launch(sub))
        runs_dir = os.path.dirname(prepared[0]["run_dir"])
        argv = [
            "sbatch",
            "--parsable",
            "--chdir=" + runs_dir,
            os.path.join(prepared[0]["run_dir"], "job.sbatch"),
            sys.executable,
            os.path.abspath(__file__),
            os.path.join(runs_dir, base),
        ]
        job_id = _sbatch(argv, "array")
    except BaseException:
        for cell in prepared:
            shutil.rmtree(cell["run_dir"], ignore_errors=True)
        raise
    now = time.time()
    for i, cell in enumerate(prepared):
        cell["job_id"] = f"{job_id}_{i}"
        record = {"job_id": cell["job_id"], "array_job_id": job_id, "array_index": i}
        record.update(argv=argv, submitted_at=now)
        write_json_atomic(os.path.join(cell["run_dir"], "slurm.json"), record)
    return {"array_job_id": job_id, "cells": prepared}


class _SlurmSupervisor(_Supervisor):
    """One attempt of a Slurm run, as the job step on the compute node. Besides what every
    supervisor does it keeps per-attempt records, writes exit.json only when the run is over,
    and exits with the job's status, or 75 when the attempt was interrupted and the batch shell
    should requeue the job."""

    def __init__(self, run_dir: str, launcher: List[str]) -> None:
        super().__init__(run_dir)
        self.attempt = _int_or_zero(os.environ.get("SLURM_RESTART_COUNT"))
        self.first_signal_at: float | None = None
        self.status: int | None = None
        self.main_dir = run_dir
        # One supervisor per node on a multi-node run: node 0 keeps the run's own records (its
        # state); node k keeps its records and its ranks' output under nodes/<k>/.
        self.node_rank = _int_or_zero(os.environ.get("SLURM_NODEID"))
        if self.node_rank:
            self.run_dir = os.path.join(run_dir, "nodes", str(self.node_rank))
            os.makedirs(self.run_dir, exist_ok=True)
        if launcher and isinstance(self.spec, dict) and "command" in self.spec:
            self.spec["command"] = [*launcher, *self.spec["command"]]

    def on_signal(self, signum: int, frame: object) -> None:
        if self.first_signal_at is None:
            self.first_signal_at = time.time()
        super().on_signal(signum, frame)

    def run(self) -> int:
        attempts = os.path.join(self.run_dir, "attempts")
        os.makedirs(attempts, exist_ok=True)
        stale = os.path.join(self.run_dir, "exit.json")
        if os.path.exists(stale):  # a finished run requeued by hand: it is not over any more
            os.replace(stale, os.path.join(attempts, f"exit-before-{self.attempt}.json"))
        code = super().run()
        return self.status if self.status is not None else code

    def _report_ready(self, launch: Rec) -> None:
        launch.update(self._where())
        write_json_atomic(os.path.join(self.run_dir, "launch.json"), launch)
        super()._report_ready(launch)

    def _where(self) -> Rec:
        return {
            "attempt": self.attempt,
            "job_id": os.environ.get("SLURM_JOB_ID"),
            "node": os.environ.get("SLURMD_NODENAME") or os.uname().nodename,
            "node_rank": self.node_rank,
        }

    def _write_exit(
        self,
        code: int | None,
        sig: int | None,
        max_rss_bytes: int,
        launch: Rec,
        error: str | None = None,
    ) -> None:
        cancelled = os.path.exists(os.path.join(self.main_dir, "cancel.json"))
        signalled = self.first_signal_at is not None
        interrupted = not cancelled and (code == SLURM_REQUEUE_EXIT or (signalled and code != 0))
        ended_at = time.time()
        if interrupted:
            self.status = SLURM_REQUEUE_EXIT
        else:
            self.status = code if code is not None else 128 + (sig or 0)
        record = dict(self._where())
        record.update(
            {
                "exit_code": code,
                "signal": sig,
                "max_rss_bytes": max_rss_bytes,
                "started_at": launch.get("started_at"),
                "ended_at": ended_at,
                "forwarded_signals": self.forwarded,
                "requeue": interrupted,
                # TERM -> exit: the save on a warning, measured; the next submission of this
                # run name sizes its --signal lead from it (SLURM2).
                "term_to_exit_s": (
                    round(ended_at - self.first_signal_at, 3) if self.first_signal_at else None
                ),
            }
        )
        if error:
            record["error"] = error
        path = os.path.join(self.run_dir, "attempts", f"{self.attempt}.json")
        write_json_atomic(path, record)
        if not interrupted:
            super()._write_exit(code, sig, max_rss_bytes, launch, error)


def _int_or_zero(text: object) -> int:
    try:
        return max(0, int(str(text)))
    except ValueError:
        return 0


def supervisor_for(run_dir: str, launcher: List[str]) -> _Supervisor:
    """The supervisor of ``supervise RUN_DIR [LAUNCHER...]``: a Slurm run's attempt (LAUNCHER,
    e.g. torchrun on a multi-node run, goes before the job's command) or a plain one."""
    spec = read_json(os.path.join(run_dir, "run.json"))
    if isinstance(spec, dict) and spec.get("backend") == "slurm":
        return _SlurmSupervisor(run_dir, launcher)
    return _Supervisor(run_dir)


def _is_slurm_run(run_dir: str) -> Rec | None:
    spec = read_json(os.path.join(run_dir, "run.json"))
    return spec if isinstance(spec, dict) and spec.get("backend") == "slurm" else None


def _slurm_job_id(run_dir: str) -> str | None:
    rec = read_json(os.path.join(run_dir, "slurm.json"))
    job_id = rec.get("job_id") if isinstance(rec, dict) else None
    return str(job_id) if job_id else None


def squeue_jobs(job_ids: List[str]) -> tuple[Dict[str, Rec], str | None]:
    """The scheduler's view of the given jobs in one call; (by job id, error)."""
    if not job_ids:
        return {}, None
    fmt = ",".join(f + ":|" for f in SQUEUE_FIELDS)
    argv = ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-O", fmt]
    done = run_cmd(argv, SLURM_CMD_TIMEOUT_S)
    if done["rc"] != 0:
        # Every id unknown makes squeue fail ("Invalid job id specified"): that is an answer.
        if "invalid job id" in (done["stderr"] + done["stdout"]).lower():
            return {}, None
        return {}, done["error"] or "squeue failed"
    out: Dict[str, Rec] = {}
    for line in done["stdout"].splitlines():
        values = line.split("|")
        if len(values) < len(SQUEUE_FIELDS):
            continue
        row = {f: values[i].strip() for i, f in enumerate(SQUEUE_FIELDS)}
        # An array task's JobID is its raw id; outlive names it ARRAY_TASK, as Slurm's -j does.
        task = row["ArrayTaskID"]
        out[f"{row['ArrayJobID']}_{task}" if task.isdigit() else row["JobID"]] = row
    return out, None


def sacct_jobs(job_ids: List[str]) -> tuple[Dict[str, List[Rec]], str | None]:
    """Accounting rows (the job and its steps) where the cluster keeps accounting."""
    if not job_ids or shutil.which("sacct") is None:
        return {}, None
    argv = ["sacct", "-n", "-P", "-j", ",".join(job_ids), "-o", ",".join(SACCT_FIELDS)]
    done = run_cmd(argv, SLURM_CMD_TIMEOUT_S)
    if done["rc"] != 0:
        return {}, done["error"] or "sacct failed"
    out: Dict[str, List[Rec]] = {}
    for line in done["stdout"].splitlines():
        values = line.split("|")
        if len(values) < len(SACCT_FIELDS):
            continue
        row = {f: values[i] for i, f in enumerate(SACCT_FIELDS)}
        out.setdefault(row["JobID"].split(".")[0], []).append(row)
    return out, None


def _slurm_records(run_dir: str, spec: Rec, now: float) -> Rec:
    progress, heartbeat_age_s = _progress(run_dir, now)
    attempts: List[Rec] = []
    try:
        names = os.listdir(os.path.join(run_dir, "attempts"))
    except OSError:
        names = []
    for n in sorted(names, key=lambda s: (len(s), s)):
        if re.match(r"^[0-9]+\.json$", n):
            rec = read_json(os.path.join(run_dir, "attempts", n))
            if isinstance(rec, dict):
                attempts.append(rec)

    def record(name: str) -> Rec | None:
        rec = read_json(os.path.join(run_dir, name))
        return rec if isinstance(rec, dict) and "_unreadable" not in rec else None

    return {
        "backend": "slurm",
        "run_id": spec.get("run_id"),
        "name": spec.get("name"),
        "run_dir": run_dir,
        "ckpt_dir": spec.get("ckpt_dir"),
        "job_id": _slurm_job_id(run_dir),
        "launch": record("launch.json"),
        "exit": record("exit.json"),
        "end": record("slurm_end.json"),
        "attempts": attempts,
        "cancel_requested": os.path.exists(os.path.join(run_dir, "cancel.json")),
        "progress": progress,
        "heartbeat_age_s": heartbeat_age_s,
        "scheduler": None,
        "accounting": None,
        "scheduler_error": None,
    }


def slurm_probe(run_dirs: List[str], now: float) -> Dict[str, Rec]:
    """The state of the Slurm runs among ``run_dirs``, judged from their records and the
    scheduler: one squeue call for all their jobs, one sacct call for those squeue has dropped."""
    found: Dict[str, Rec] = {}
    for run_dir in run_dirs:
        spec = _is_slurm_run(run_dir)
        if spec is not None:
            found[run_dir] = _slurm_records(run_dir, spec, now)
    ask = [r["job_id"] for r in found.values() if r["job_id"] and not r["exit"] and not r["end"]]
    sched, error = squeue_jobs(ask)
    gone = [j for j in ask if j not in sched or sched[j].get("State") in SLURM_TERMINAL]
    acct, acct_error = sacct_jobs(gone) if gone and error is None else ({}, None)
    for run_dir, rec in found.items():
        job_id = rec["job_id"]
        if job_id in ask:
            rec["scheduler"] = sched.get(job_id)
            rec["accounting"] = acct.get(job_id)
            rec["scheduler_error"] = error
            rec["accounting_error"] = acct_error
            state = (rec["scheduler"] or {}).get("State") or _acct_state(rec["accounting"])
            if state in SLURM_TERMINAL and not os.path.exists(os.path.join(run_dir, "exit.json")):
                # squeue forgets a job MinJobAge after it ends: keep what it said.
                end = {
                    "scheduler": rec["scheduler"],
                    "accounting": rec["accounting"],
                    "seen_at": now,
                }
                with contextlib.suppress(OSError):
                    write_json_atomic(os.path.join(run_dir, "slurm_end.json"), end)
                rec["end"] = end
        found[run_dir] = slurm_judge(rec)
    return found


def _acct_state(rows: List[Rec] | None) -> str | None:
    """The job's own row of sacct ("CANCELLED by 0" → "CANCELLED")."""
    for row in rows or []:
        if "." not in str(row.get("JobID", "")):
            return str(row.get("State", "")).split(" ")[0] or None
    return None


_SLURM_PENDING = ("PENDING", "CONFIGURING", "RESV_DEL_HOLD")
_SLURM_REQUEUED = ("REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT")


def _slurm_exit_code(text: object) -> tuple[int | None, int | None]:
    """sacct's ``N:S`` or squeue's raw wait status (``256`` is exit 1) → (exit code, signal)."""
    parts = str(text or "").split(":")
    try:
        code = int(parts[0])
        sig = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None, None
    if len(parts) == 1:
        code, sig = code >> 8, code & 0x7F
    return (None, sig) if sig else (code, None)


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _slurm_bytes(text: object) -> int | None:
    """Slurm sizes (``1234K``, ``2000M``, ``4000Mn``, ``16G``) in bytes; bare numbers are MiB
    for memory requests, as Slurm reads them."""
    m = re.match(r"^([0-9.]+)([KMGT]?)", str(text or "").strip())
    if not m:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS.get(m.group(2) or "M", 1 << 20))


def _oom_advice(rec: Rec, job_id: str) -> List[str]:
    """SLURM4: the job passed its memory request; MaxRSS and ReqMem say by how much."""
    rows = rec.get("accounting") or []
    rss = [_slurm_bytes(r.get("MaxRSS")) for r in rows if r.get("MaxRSS")]
    rss_b = max([x for x in rss if x] or [0]) or max(
        [int(a.get("max_rss_bytes") or 0) for a in rec.get("attempts") or []] + [0]
    )
    req = next((r.get("ReqMem") for r in rows if r.get("ReqMem")), None) or (
        rec.get("scheduler") or {}
    ).get("MinMemory")
    req_b = _slurm_bytes(req)
    evidence = [
        f"Slurm ended job {job_id} as OUT_OF_MEMORY: it passed the memory it asked for and the "
        "job's cgroup killed it (host RAM, not GPU memory: do not shrink the batch for this)"
    ]
    if rss_b and req_b:
        want = math.ceil(rss_b * 1.2 / (1 << 20))
        evidence.append(
            f"MaxRSS {rss_b >> 20} MiB of ReqMem {req_b >> 20} MiB: raise --mem (mem = ...) to "
            f"about MaxRSS x 1.2 = {want}M"
        )
    else:
        evidence.append(
            f"read `sacct -j {job_id} -o MaxRSS,ReqMem` and raise --mem (mem = ...) to about "
            "MaxRSS x 1.2"
        )
    return evidence


def _slurm_ended(rec: Rec, state: str, job_id: str, restarts: int) -> Rec:
    """State and diagnosis of a job the scheduler reports ended, when no exit record exists."""
    row = rec.get("scheduler") or {}
    code, sig = _slurm_exit_code(row.get("exit_code"))
    for r in rec.get("accounting") or []:
        if "." not in str(r.get("JobID", "")):
            code, sig = _slurm_exit_code(r.get("ExitCode"))
    out: Rec = {"exit_code": code, "signal": sig}
    if state == "CANCELLED":
        out["state"] = "cancelled"
        return out
    out["state"] = "failed"
    last = (rec.get("attempts") or [{}])[-1]
    if state == "OUT_OF_MEMORY":
        diag = {"cause": "oom", "evidence": _oom_advice(rec, job_id), "gotchas": ["SLURM4", "U9"]}
    elif state == "TIMEOUT":
        limit = row.get("TimeLimit") or "its --time"
        diag = {
            "cause": "killed",
            "evidence": [
                f"Slurm ended job {job_id} at its time limit ({limit}) before the job saved "
                "and requeued: the --signal lead was too short for the save, or the job does "
                "not save on TERM"
            ],
            "gotchas": ["SLURM2", "SLURM1"],
        }
    elif state == "COMPLETED":
        diag = {
            "cause": "unknown",
            "evidence": [f"Slurm reports job {job_id} COMPLETED but no exit record was written"],
            "gotchas": ["U3"],
        }
    elif state == "FAILED" and restarts > _int_or_zero(last.get("attempt", -1)):
        diag = {
            "cause": "unknown",
            "evidence": [
                f"attempt {restarts + 1} of job {job_id} ended (FAILED, exit {code}) before "
                "outlive's supervisor started: the batch script or srun failed; see stdout.log "
                "and the node's slurmd log"
            ],
            "gotchas": ["U3"],
        }
    elif state == "FAILED" and last.get("requeue"):
        diag = {
            "cause": "unknown",
            "evidence": [
                f"the job saved and asked to run again, but `scontrol requeue {job_id}` failed "
                "in the batch script (is requeue allowed on this partition?)"
            ],
            "gotchas": ["SLURM1"],
        }
    else:
        diag = {
            "cause": "killed" if state != "FAILED" else "unknown",
            "evidence": [f"Slurm reports job {job_id} {state} (exit {row.get('exit_code')})"],
            "gotchas": ["U3"],
        }
    out["diagnosis"] = diag
    return out


def slurm_judge(rec: Rec) -> Rec:
    """A Slurm run's status (probe_one's shape plus ``restarts`` and ``slurm``) from its own
    records, which win once the run is over, and the scheduler's view while it is not."""
    launch = rec.get("launch") or {}
    exit_rec = rec.get("exit")
    attempts = rec.get("attempts") or []
    end = rec.get("end") or {}
    row = rec.get("scheduler") or end.get("scheduler") or {}
    if not rec.get("accounting") and end.get("accounting"):
        rec["accounting"] = end["accounting"]
    if not rec.get("scheduler") and row:
        rec["scheduler"] = row
    raw = row.get("State") or _acct_state(rec.get("accounting"))
    job_id = str(rec.get("job_id") or "?")
    # Attempt n exists only after n restarts; the scheduler's count leads while it knows the job.
    restarts = max(
        [_int_or_zero(row.get("RestartCnt")), _int_or_zero(launch.get("attempt"))]
        + [_int_or_zero(a.get("attempt")) for a in attempts]
    )
    saves = [float(a["term_to_exit_s"]) for a in attempts if a.get("term_to_exit_s")]
    out: Rec = {
        "run_id": rec.get("run_id"),
        "name": rec.get("name"),
        "run_dir": rec.get("run_dir"),
        "ckpt_dir": rec.get("ckpt_dir"),
        "exit_code": None,
        "signal": None,
        "pid": launch.get("pid"),
        "supervisor_pid": launch.get("supervisor_pid"),
        "started_at": launch.get("started_at"),
        "ended_at": None,
        "heartbeat_age_s": rec.get("heartbeat_age_s"),
        "progress": rec.get("progress"),
        "diagnosis": None,
        "cancel_requested": bool(rec.get("cancel_requested")),
        "restarts": restarts,
        "slurm": {
            "job_id": rec.get("job_id"),
            "state": raw,
            "reason": row.get("Reason") if row.get("Reason") not in (None, "", "None") else None,
            "restarts": restarts,
            "node": launch.get("node") or row.get("NodeList") or None,
            "time_limit": row.get("TimeLimit"),
            "attempts": len(attempts),
            "save_s": max(saves) if saves else None,
        },
    }
    if rec.get("scheduler_error"):
        out["slurm"]["error"] = rec["scheduler_error"]
    if exit_rec is not None:
        out.update(
            exit_code=exit_rec.get("exit_code"),
            signal=exit_rec.get("signal"),
            ended_at=exit_rec.get("ended_at"),
            max_rss_bytes=exit_rec.get("max_rss_bytes"),
        )
        if exit_rec.get("exit_code") == 0:
            out["state"] = "succeeded"
        elif rec.get("cancel_requested"):
            out["state"] = "cancelled"
        else:
            out["state"] = "failed"
            grew = (exit_rec.get("oom_kill_after") or 0) > (launch.get("oom_kill_baseline") or 0)
            if raw == "OUT_OF_MEMORY" or (exit_rec.get("signal") and grew):
                out["diagnosis"] = {
                    "cause": "oom",
                    "evidence": _oom_advice(rec, job_id),
                    "gotchas": ["SLURM4", "U9"],
                }
            elif exit_rec.get("signal"):
                out["diagnosis"] = {
                    "cause": "killed",
                    "evidence": [f"the job died of {exit_rec.get('signal_name') or 'a signal'}"],
                    "gotchas": ["U3"],
                }
        return out
    # scontrol requeue counts the restart at once, while the old attempt is still COMPLETING.
    being_requeued = bool(launch) and restarts > _int_or_zero(launch.get("attempt"))
    if raw in _SLURM_PENDING:
        out["state"] = "requeued" if restarts > 0 else "pending"
    elif raw in _SLURM_REQUEUED or (raw == "COMPLETING" and being_requeued):
        out["state"] = "requeued"
    elif raw in SLURM_TERMINAL:
        out.update(_slurm_ended(rec, raw, job_id, restarts))
    elif raw:
        out["state"] = "running"
    elif rec.get("scheduler_error"):
        out["state"] = "running" if launch else "pending"
        out["warning"] = (
            f"the scheduler did not answer ({rec['scheduler_error']}); the state is the run's "
            "own last record"
        )
    else:
        out["state"] = "vanished"
        out["diagnosis"] = {
            "cause": "unknown",
            "evidence": [
                f"Slurm no longer knows job {job_id} (it forgets ended jobs after MinJobAge and "
                "this cluster keeps no accounting) and the run left no exit record"
            ],
            "gotchas": ["U3"],
        }
    if out["state"] != "running" or (launch and _int_or_zero(launch.get("attempt")) != restarts):
        out["pid"] = out["supervisor_pid"] = None  # no process of this attempt runs
    return out


def slurm_cancel(run_dir: str, grace_s: float) -> Rec:
    """``scancel`` the run's job: Slurm sends TERM to the job's steps and the batch shell and
    KILL after its KillWait; cancel.json keeps the batch shell from requeueing it."""
    if os.path.exists(os.path.join(run_dir, "exit.json")):
        return {"signalled": None, "note": "the run is not running"}
    job_id = _slurm_job_id(run_dir)
    if not job_id:
        return {"signalled": None, "note": "the run has no Slurm job id (it was never submitted)"}
    cancel_path = os.path.join(run_dir, "cancel.json")
    if not os.path.exists(cancel_path):
        write_json_atomic(cancel_path, {"requested_at": time.time(), "grace_s": grace_s})
    done = run_cmd(["scancel", job_id], SLURM_CMD_TIMEOUT_S)
    if done["rc"] != 0:
        raise AgentError(f"scancel {job_id} failed: {done['error']}")
    return {"signalled": "slurm job", "job_id": job_id, "grace_s": grace_s}


def slurm_tail_ended(run_dir: str) -> bool:
    """For ``logs -f``: a Slurm run with no exit record has ended once the scheduler says so."""
    if _is_slurm_run(run_dir) is None:
        return False
    if os.path.exists(os.path.join(run_dir, "slurm_end.json")):
        return True
    job_id = _slurm_job_id(run_dir)
    if not job_id:
        return True
    sched, error = squeue_jobs([job_id])
    if error is not None:
        return False
    row = sched.get(job_id)
    return row is None or row.get("State") in SLURM_TERMINAL


# <<< slurm ------------------------------------------------------------------------------------


VERBS = {
    "launch": verb_launch,
    "probe": verb_probe,
    "cancel": verb_cancel,
    "tail": verb_tail,
    "expand": verb_expand,
    "verify_deploy": verb_verify_deploy,
    "secret_put": verb_secret_put,
    "audit": verb_audit,
    "doctor": verb_doctor,
    "manifest": verb_manifest,  # pull manifests (issue 6)
}


# ---------------------------------------------------------------------------------------------
# serve: a long-lived agent for a resident client (the local daemon, `watch`, `logs -f`)

# Only verbs that read: a request repeated after a dropped channel must change nothing.
SERVE_VERBS = ("probe", "tail")
SERVE_IDLE_S = 900.0  # no request for this long: exit (the client also closes our stdin)


def _answer(verb: str, req: object) -> Rec:
    try:
        if not isinstance(req, dict):
            raise AgentError("the request must be a JSON object")
        return {"ok": True, "result": VERBS[verb](req), "agent_version": AGENT_VERSION}
    except AgentError as exc:
        return {"ok": False, "error": str(exc), "kind": exc.kind}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}


def serve(inp: Any, out: Any, idle_s: float = SERVE_IDLE_S) -> int:
    """Answer one JSON line per request line, ``{"verb": V, "request": {...}}``, until stdin ends.

    The first line out is a greeting, so the client knows the agent started (not just ssh).
    Requests are answered in order; a line that is not a request gets an error reply, not an exit.
    """
    import select

    def send(doc: Rec) -> None:
        out.write(json.dumps(doc).encode() + b"\n")
        out.flush()

    send({"ok": True, "serve": AGENT_VERSION, "verbs": list(SERVE_VERBS), "pid": os.getpid()})
    fd = inp.fileno()
    buf = b""
    while True:
        while b"\n" not in buf:
            ready, _, _ = select.select([fd], [], [], idle_s)
            if not ready:
                return 0
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return 0
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            msg = None
        verb = msg.get("verb") if isinstance(msg, dict) else None
        if verb not in SERVE_VERBS:
            send({"ok": False, "error": "serve answers only {}".format(", ".join(SERVE_VERBS))})
            continue
        send(_answer(str(verb), msg.get("request")))


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "supervise":
        return supervisor_for(argv[2], argv[3:]).run()
    if len(argv) == 2 and argv[1] == "serve":
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    if len(argv) != 2 or argv[1] not in VERBS:
        sys.stdout.write(
            json.dumps({"ok": False, "error": "usage: box.py {{{}}}".format(",".join(VERBS))})
        )
        return 2
    try:
        req = json.loads(sys.stdin.read() or "{}")
    except ValueError as exc:
        reply = {"ok": False, "error": "ValueError: " + str(exc)}
    else:
        reply = _answer(argv[1], req)
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
