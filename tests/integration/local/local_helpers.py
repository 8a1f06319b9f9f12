"""Helpers for the local-target tests: a project directory driven through the real ``outlive``
console script, polling a run's state with a deadline, and throwaway cgroups (v1 or v2)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlive.agent.box import procfs as box_procfs
from outlive.agent.box import records as box_records
from outlive.testing import DEADLINE_S, wait_until

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
ENDED = ("succeeded", "failed", "vanished", "cancelled")
DEFAULT_TIMEOUT_S = DEADLINE_S  # generous: it holds with every core busy (scripts/hog.sh)

# A job that reports progress (optional), waits until a "go" file exists, then exits with a code.
WAIT_JOB = """\
import os, sys, time
go, code = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    from outlive import progress
    progress(int(sys.argv[3]), loss=0.25)
print("waiting for", go, flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
sys.exit(code)
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would leak into a job's contract."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("OUTLIVE_") or k == "OUTLIVE_DAEMON_DIR")  # the session's daemons
        and k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
    env.update(extra)
    return env


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    return wait_until(check, what, timeout_s)


@dataclass
class Project:
    """A temp project whose root holds an outlive.toml; drives the CLI with cwd = that root."""

    dir: Path
    env: dict[str, str] = field(default_factory=clean_env)

    def cli(
        self,
        *args: str,
        rc: int | None = 0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        argv_prefix: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run ``outlive ARGS`` here; ``rc`` is the exit status it must have (None: any)."""
        done = subprocess.run(
            [*argv_prefix, OUTLIVE, *args],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if rc is not None:
            assert done.returncode == rc, (
                f"outlive {' '.join(args)!r} exited {done.returncode}, expected {rc}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def run(self, *command: str, name: str | None = None) -> str:
        """``outlive run --json [--name NAME] -- COMMAND``; returns the run id."""
        opts = ("--name", name) if name is not None else ()
        done = self.cli("run", "--json", *opts, "--", *command)
        return str(json.loads(done.stdout)["run_id"])

    def python(self, script: str, *args: str, name: str | None = None) -> str:
        """Launch ``python SCRIPT ARGS`` (a file in the project) with this interpreter."""
        return self.run(sys.executable, script, *args, name=name)

    def start_waiting(
        self, name: str, exit_code: int = 0, progress_step: int | None = None
    ) -> tuple[str, Path]:
        """Launch a job that stays running until the returned "go" file is created."""
        if not (self.dir / "wait_job.py").exists():
            self.write("wait_job.py", WAIT_JOB)
        go = self.dir / f"go-{name}"
        extra = (str(progress_step),) if progress_step is not None else ()
        return self.python("wait_job.py", str(go), str(exit_code), *extra, name=name), go

    def write(self, rel: str, text: str) -> Path:
        path = self.dir / rel
        path.write_text(text)
        return path

    def status(self, run_id: str) -> dict[str, Any]:
        """One look through the same lifecycle code the CLI uses (no interpreter start-up)."""
        from outlive.lifecycle.runs import status
        from outlive.session import Session

        return status(Session.open(self.dir), [run_id])[0].to_json()

    def status_cli(self, run_id: str) -> dict[str, Any]:
        done = self.cli("status", "--json", run_id, rc=None)
        runs = json.loads(done.stdout)["runs"]
        assert len(runs) == 1
        return dict(runs[0])

    def wait(
        self,
        run_id: str,
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def look() -> dict[str, Any] | None:
            last.clear()
            last.update(self.status(run_id))
            return dict(last) if done(last) else None

        try:
            return dict(wait_for(look, what, timeout_s))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {last}") from None

    def wait_running(self, run_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        return self.wait(run_id, lambda s: s["state"] == "running", f"{run_id} running", timeout_s)

    def wait_ended(self, run_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
        return self.wait(run_id, lambda s: s["state"] in ENDED, f"{run_id} to end", timeout_s)

    def run_dirs(self) -> list[Path]:
        runs = self.dir / ".outlive" / "runs"
        return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def kill_leftovers(self) -> None:
        """SIGKILL every job process group and supervisor of this project still alive."""
        for run_dir in self.run_dirs():
            launch = box_records.read_json(str(run_dir / "launch.json"))
            if not isinstance(launch, dict):
                continue
            if launch.get("pgid") and box_procfs.is_alive(
                launch.get("pid"), launch.get("start_ticks")
            ):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(launch["pgid"]), signal.SIGKILL)
            sup, ticks = launch.get("supervisor_pid"), launch.get("supervisor_start_ticks")
            if box_procfs.is_alive(sup, ticks):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(sup), signal.SIGKILL)


def read_json_file(path: Path) -> Any:
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# throwaway cgroups (v1 controllers or the v2 unified tree), found without outlive's own parsers


class CgroupUnavailable(Exception):
    """This host cannot give the test a child cgroup with the controller it needs."""


def _mounts() -> list[tuple[str, str, str, list[str]]]:
    """(root, mount point, fstype, super options) of every cgroup mount of this process."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) >= 5 and len(rparts) >= 3 and rparts[0] in ("cgroup", "cgroup2"):
            out.append((parts[3], parts[4], rparts[0], rparts[2].split(",")))
    return out


def _join(mount_root: str, mount_point: str, path: str) -> Path:
    rel = os.path.relpath(path, mount_root) if mount_root != "/" else path.lstrip("/")
    return Path(os.path.normpath(os.path.join(mount_point, rel)))


def _session_cgroup(controller: str) -> tuple[Path, int, Path]:
    """This session's cgroup dir for ``controller``, the cgroup version, and the mount point."""
    v1_path = v2_path = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            v1_path = path
        if hid == "0" and controllers == "":
            v2_path = path
    mounts = _mounts()
    for root, point, fstype, opts in mounts:
        if fstype == "cgroup" and controller in opts and v1_path is not None:
            return _join(root, point, v1_path), 1, Path(point)
    for root, point, fstype, _ in mounts:
        if fstype == "cgroup2" and v2_path is not None:
            available = (Path(point) / "cgroup.controllers").read_text().split()
            if controller in available:
                return _join(root, point, v2_path), 2, Path(point)
    raise CgroupUnavailable(f"no cgroup v1 or v2 '{controller}' controller is mounted here")


class ChildCgroup:
    """A child cgroup made by the test; anything left in it is killed and it is removed."""

    def __init__(self, controller: str) -> None:
        parent, self.version, mount = _session_cgroup(controller)
        self.controller = controller
        leaf = f"outlive-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe = "memory.max" if controller == "memory" else "cpu.max"
        candidates = [parent] if self.version == 1 else list(dict.fromkeys([parent, mount]))
        for base in candidates:
            path = base / leaf
            try:
                path.mkdir()
            except OSError as exc:
                raise CgroupUnavailable(f"cannot create a cgroup under {base}: {exc}") from None
            if self.version == 1 or (path / probe).exists() or self._enable(base, path, probe):
                self.path, self.parent = path, base
                return
            path.rmdir()
        raise CgroupUnavailable(
            f"cgroup v2 here does not delegate the {controller} controller to a child of "
            f"{parent} or {mount} (it is not in their cgroup.subtree_control)"
        )

    def _enable(self, base: Path, path: Path, probe: str) -> bool:
        with contextlib.suppress(OSError):
            (base / "cgroup.subtree_control").write_text(f"+{self.controller}")
        return (path / probe).exists()

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, argv: list[str]) -> list[str]:
        """argv that first moves itself into this cgroup, then execs ``argv`` (children inherit)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.procs_file), *argv]

    def limit_memory(self, limit_bytes: int) -> None:
        if self.version == 1:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):  # only where swap accounting is on
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        else:
            (self.path / "memory.max").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):
                (self.path / "memory.swap.max").write_text("0")

    def limit_cpu(self, quota_us: int, period_us: int) -> None:
        if self.version == 1:
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (self.path / "cpu.max").write_text(f"{quota_us} {period_us}")

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise AssertionError(f"no oom_kill line in {self.path / name}")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.procs_file.read_text().split()]
        except FileNotFoundError:
            return []

    def remove(self) -> None:
        for pid in self.pids():  # only processes this test put here
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            wait_for(lambda: not self.pids(), f"{self.path} to empty", timeout_s=10)
        except AssertionError:
            for pid in self.pids():  # e.g. an unreaped zombie: hand it back to the parent
                with contextlib.suppress(OSError):
                    (self.parent / "cgroup.procs").write_text(str(pid))
        deadline = time.monotonic() + 10
        while self.path.exists():
            try:
                self.path.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
