"""A throwaway single-node Slurm cluster: munged, slurmctld and slurmd from Debian's packages.

Everything of cluster NAME lives in ``<testbed root>/slurm-<name>/`` (``/tmp/outlive-testbed`` or
``$OUTLIVE_TESTBED_DIR``): its own munge key and socket, a ``slurm.conf`` on free ports, state,
spool, logs, two plain files posing as GPUs (``GresTypes=gpu``; jobs asking ``--gres=gpu:N``
schedule, but no ``CUDA_VISIBLE_DEVICES`` is set since they are not devices) and ``shared/``, the
"shared filesystem" where the target's workdir and durable paths live. Nothing outside that
directory is touched, so several clusters (and the machine's own Slurm, if any) coexist.

Slurm's client commands find a cluster through ``SLURM_CONF``: export ``cluster.env`` (what
``up --json`` prints under ``"env"``) before calling ``sbatch``/``squeue`` or ``outlive`` against
it. Jobs started by the cluster get ``SLURM_CONF`` from slurmd.

Facts this relies on (TESTBED.md): a requeued job waits ~2 min 45 s (``Reason=BeginTime``) before
it runs again; ``start_now(job)`` (``scontrol update jobid=J StartTime=now``) skips that wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

from outlive.errors import ConfigError
from outlive.testing._errors import TestbedError, TestbedUnavailable
from outlive.testing.box import testbed_root

__all__ = ["DEFAULT_SLURM_NAME", "SlurmCluster", "check_slurm_prerequisites"]

DEFAULT_SLURM_NAME = "slurm1"
PARTITION = "debug"
NODE = "localhost"
NODE_CPUS = 4  # more than this machine may have: config_overrides trusts the config (4 cells)
NODE_MEM_MB = 2000
KILL_WAIT_S = 5  # the TERM -> KILL window at a time limit, requeue or scancel
REVOKE_GAP_S = 1.5  # see start_now
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_TOOLS = {
    "munged": "munge",
    "munge": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
    "squeue": "slurm-client",
    "scontrol": "slurm-client",
    "scancel": "slurm-client",
}
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for d in _SBIN:
        if os.access(os.path.join(d, tool), os.X_OK):
            return os.path.join(d, tool)
    return None


def check_slurm_prerequisites() -> None:
    """Raise TestbedUnavailable naming what is missing (root, munge, Slurm's daemons)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise TestbedUnavailable(
            "The Slurm testbed runs slurmd and slurmctld as root; run it as root."
        )
    missing = {tool: pkg for tool, pkg in _TOOLS.items() if _which(tool) is None}
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise TestbedUnavailable(
            f"The Slurm testbed needs {', '.join(sorted(missing))}, not found; "
            f"install with `apt-get install slurm-wlm munge` ({pkgs})."
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_scontrol_line(line: str) -> dict[str, str]:
    """``scontrol -o show job`` prints ``Key=Value`` pairs separated by spaces; a value may
    itself hold spaces only in the last fields (Command, WorkDir, ...), which we keep whole."""
    out: dict[str, str] = {}
    for m in re.finditer(r"(\S+?)=(.*?)(?=\s+\S+?=|$)", line.strip()):
        out[m.group(1)] = m.group(2)
    return out


class SlurmCluster:
    """A handle on the throwaway cluster NAME; ``SlurmCluster.up(name)`` starts it (or finds it
    healthy), ``SlurmCluster(name)`` attaches to one another process started."""

    def __init__(self, name: str = DEFAULT_SLURM_NAME) -> None:
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(
                f"Slurm testbed name {name!r} is invalid; use 1-32 lowercase letters, digits, "
                "'-' or '_', starting with a letter or digit."
            )
        self.name = name
        self.dir = testbed_root() / f"slurm-{name}"

    def __repr__(self) -> str:
        return f"SlurmCluster({self.name!r})"

    # -- what a test or an outlive.toml needs -------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.dir / "etc" / "slurm.conf"

    @property
    def shared(self) -> Path:
        """The cluster's "shared filesystem" (on a real cluster: $HOME or /scratch)."""
        return self.dir / "shared"

    @property
    def workdir(self) -> Path:
        return self.shared / "work"

    @property
    def durable(self) -> Path:
        return self.shared / "durable"

    @property
    def env(self) -> dict[str, str]:
        """What Slurm's client commands need in their environment to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    @property
    def target(self) -> dict[str, str]:
        """Exactly the keys of an outlive.toml ``[targets.<name>]`` table for this cluster
        (no host: ``sbatch`` runs here, with ``SLURM_CONF`` from ``env`` exported)."""
        return {
            "profile": "slurm",
            "workdir": str(self.workdir),
            "durable": str(self.durable),
            "partition": PARTITION,
        }

    def command(
        self, *argv: str, timeout_s: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (``scontrol``, ``squeue``, ...) against this cluster."""
        env = dict(os.environ, **self.env)
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
        if check and proc.returncode != 0:
            why = proc.stderr.strip() or f"exit status {proc.returncode}"
            raise TestbedError(f"`{' '.join(argv)}` failed on cluster {self.name}: {why}.")
        return proc

    def job(self, job_id: str) -> dict[str, str] | None:
        """``scontrol show job`` of one job as a dict, None when the cluster forgot it."""
        proc = self.command("scontrol", "-o", "show", "job", str(job_id), check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        return parse_scontrol_line(proc.stdout.splitlines()[0])

    def requeue(self, job_id: str, *, start_now: bool = True) -> None:
        """``scontrol requeue J`` (the running attempt gets TERM, then KILL after KillWait), and
        skip Slurm's ~2 min 45 s requeue delay unless ``start_now`` is False."""
        self.command("scontrol", "requeue", str(job_id))
        if start_now:
            self.start_now(job_id)

    def start_now(self, job_id: str, timeout_s: float = 30.0) -> bool:
        """Once job J is pending again, make it eligible now (``StartTime=now``); returns whether
        it was pending within ``timeout_s``.

        Not quite at once: slurmd revokes the old attempt's credential with one-second
        granularity, and a new attempt allocated within that second is killed as "Job credential
        revoked" (its batch step never starts, the job ends FAILED). So it waits
        ``REVOKE_GAP_S`` after the job turned pending."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info and info.get("JobState") == "PENDING":
                time.sleep(REVOKE_GAP_S)
                self._start_time_now(job_id)
                return True
            time.sleep(0.1)
        return False

    def _start_time_now(self, job_id: str) -> None:
        self.command("scontrol", "update", f"jobid={job_id}", "StartTime=now", check=False)

    @contextlib.contextmanager
    def skip_requeue_delay(self, poll_s: float = 0.2) -> Iterator[None]:
        """While inside, every requeued job (restart count > 0) that waits on BeginTime is made
        eligible ``REVOKE_GAP_S`` after it was first seen so, as ``start_now`` does; a job held
        by its own ``--begin`` is left alone."""
        stop = threading.Event()
        seen: dict[tuple[str, str], float] = {}

        def loop() -> None:
            fmt = "JobID:|,Reason:|,RestartCnt:|"
            while not stop.is_set():
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    proc = self.command("squeue", "-h", "-t", "PD", "-O", fmt, check=False)
                    for line in proc.stdout.splitlines():
                        job, reason, restarts = (x.strip() for x in [*line.split("|"), "", ""][:3])
                        if reason != "BeginTime" or restarts in ("", "0"):
                            continue
                        first = seen.setdefault((job, restarts), time.monotonic())
                        if time.monotonic() - first >= REVOKE_GAP_S:
                            self._start_time_now(job)
                stop.wait(poll_s)

        thread = threading.Thread(target=loop, name="skip-requeue-delay", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    def is_running(self) -> bool:
        """Whether slurmctld answers and the node is up."""
        if not self.conf.exists():
            return False
        try:
            proc = self.command("sinfo", "-h", "-o", "%T", timeout_s=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        states = proc.stdout.split()
        return proc.returncode == 0 and bool(states) and states[0].rstrip("*") in _UP_STATES

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def up(cls, name: str = DEFAULT_SLURM_NAME, *, timeout_s: float = 30.0) -> SlurmCluster:
        """Start cluster NAME and wait until its node is idle; a healthy one is left running."""
        check_slurm_prerequisites()
        cluster = cls(name)
        if cluster.is_running():
            return cluster
        cluster.down()
        try:
            cluster._start(timeout_s)
        except BaseException:
            cluster.down()
            raise
        return cluster

    def _start(self, timeout_s: float) -> None:
        d = self.dir
        for sub in ("etc", "munge", "state", "spool", "log", "gpus"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("work", "durable"):
            (self.shared / sub).mkdir(parents=True, exist_ok=True)
        (d / "munge").chmod(0o700)
        key = d / "munge" / "munge.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(1024))
        gpus = [d / "gpus" / f"gpu{i}" for i in range(2)]
        for g in gpus:
            g.touch()
        state = {"ctld_port": _free_port(), "slurmd_port": _free_port()}
        while state["slurmd_port"] == state["ctld_port"]:
            state["slurmd_port"] = _free_port()
        self.conf.write_text(self._slurm_conf(state))
        (d / "etc" / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File={gpus[0]},{gpus[1]}\n")
        (d / "state.json").write_text(json.dumps(state))
        _spawn(
            _which("munged") or "munged",
            "--force",
            f"--socket={self._munge_socket}",
            f"--key-file={key}",
            f"--pid-file={d / 'munge' / 'munged.pid'}",
            f"--log-file={d / 'log' / 'munged.log'}",
            f"--seed-file={d / 'munge' / 'munged.seed'}",
        )
        env = dict(os.environ, **self.env)
        _spawn(_which("slurmctld") or "slurmctld", "-f", str(self.conf), env=env)
        _spawn(_which("slurmd") or "slurmd", "-f", str(self.conf), "-N", NODE, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.2)
        logs = []
        for log in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = d / "log" / log
            text = path.read_text(errors="replace") if path.exists() else ""
            tail = [ln for ln in text.splitlines() if "error" in ln.lower()][-2:]
            logs += [f"{log}: {ln}" for ln in tail]
        raise TestbedError(
            f"Slurm testbed {self.name} did not become idle within {timeout_s:.0f} s"
            + (f" ({'; '.join(logs)})" if logs else "")
            + f"; see the logs in {d / 'log'}."
        )

    @property
    def _munge_socket(self) -> Path:
        return self.dir / "munge" / "munge.socket"

    def _slurm_conf(self, state: dict[str, int]) -> str:
        d = self.dir
        return f"""\
# Throwaway single-node cluster {self.name}, written by outlive.testing.slurm.
ClusterName=ot{re.sub(r"[^a-z0-9]", "", self.name)[:20]}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self._munge_socket}
SlurmctldPort={state["ctld_port"]}
SlurmdPort={state["slurmd_port"]}
StateSaveLocation={d / "state"}
SlurmdSpoolDir={d / "spool"}
SlurmctldPidFile={d / "slurmctld.pid"}
SlurmdPidFile={d / "slurmd.pid"}
SlurmctldLogFile={d / "log" / "slurmctld.log"}
SlurmdLogFile={d / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
JobCompType=jobcomp/filetxt
JobCompLoc={d / "log" / "jobcomp.txt"}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
KillWait={KILL_WAIT_S}
MinJobAge=300
GresTypes=gpu
NodeName={NODE} CPUs={NODE_CPUS} RealMemory={NODE_MEM_MB} Gres=gpu:2 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""

    def down(self) -> bool:
        """Cancel every job of the cluster, stop its daemons and remove its directory; returns
        whether there was anything to remove."""
        if not self.dir.exists():
            return False
        if self.conf.exists():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self._cancel_all_jobs()
        for pidfile, daemon in (
            ("slurmd.pid", "slurmd"),
            ("slurmctld.pid", "slurmctld"),
            ("munge/munged.pid", "munged"),
        ):
            _stop_pid(self.dir / pidfile, daemon)
        self._kill_leftovers()
        shutil.rmtree(self.dir, ignore_errors=True)
        return True

    def _cancel_all_jobs(self) -> None:
        proc = self.command("squeue", "-h", "-o", "%A", timeout_s=10, check=False)
        ids = sorted(set(proc.stdout.split())) if proc.returncode == 0 else []
        if not ids:
            return
        self.command("scancel", *ids, timeout_s=10, check=False)
        deadline = time.monotonic() + KILL_WAIT_S + 5
        while time.monotonic() < deadline:
            left = self.command("squeue", "-h", "-o", "%A", timeout_s=10, check=False)
            if left.returncode != 0 or not left.stdout.strip():
                return
            time.sleep(0.2)

    def _kill_leftovers(self) -> None:
        """Processes of this cluster's jobs that outlived its daemons: found by the SLURM_CONF in
        their environment (every job process has it), killed by pid."""
        marker = f"SLURM_CONF={self.conf}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)


_UP_STATES = ("idle", "mixed", "allocated", "completing")


def _spawn(*argv: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode != 0:
        why = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise TestbedError(f"`{' '.join(argv)}` failed: {why}.")


def _stop_pid(pidfile: Path, daemon: str, timeout_s: float = 10.0) -> None:
    """TERM (then KILL) the daemon named in ``pidfile``, if that pid still runs that daemon."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if daemon.encode() not in cmdline:
        return  # the pid was reused by something that is not ours
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class ClusterDoc(TypedDict):
    """``python -m outlive.testing slurm up --json``."""

    name: str
    target: dict[str, str]  # an outlive.toml [targets.<name>] table
    env: dict[str, str]


def cluster_doc(cluster: SlurmCluster) -> ClusterDoc:
    """The ``up --json`` document."""
    return {"name": cluster.name, "target": cluster.target, "env": cluster.env}
