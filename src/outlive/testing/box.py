"""A throwaway SSH "box": a real sshd at its own address, with its own processes and boot id.

The box is sshd running as PID 1 of a new PID + mount + UTS namespace inside a network namespace
``ob-<name>`` reached over a veth pair (host 10.77.k.1, box 10.77.k.2). It shares the host's
filesystem, as a rented machine shares nothing but behaves the same from outlive's side:

- ``reboot`` kills the namespace's PID 1, so the kernel kills every process of the box, then starts
  it again with a fresh boot id; files on the "disk" stay.
- ``cut`` takes the box's end of the link down: ssh fails with exit 255, the box's processes keep
  running; ``restore`` brings it back.

All state (keys, configs, boot id, state.json) lives in ``/tmp/outlive-testbed/<name>/`` (or under
``$OUTLIVE_TESTBED_DIR``), so a box started by one process can be driven or removed by another.
Needs root, iproute2, util-linux and openssh-server; see TESTBED.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from outlive.errors import ConfigError
from outlive.testing import _files, _netns
from outlive.testing._errors import TestbedError, TestbedUnavailable
from outlive.testing._files import CONNECT_TIMEOUT_S, BoxState

__all__ = ["CONNECT_TIMEOUT_S", "DEFAULT_NAME", "Box", "check_prerequisites", "testbed_root"]

DEFAULT_NAME = "box1"
SSH_PORT = 22  # the box has an address of its own, so the usual port is free there
_BOX_DEV = "eth0"  # the box's end of the veth pair, named as on a real machine
_MAX_INDEX = 250
_GUARD_METRIC = "4242"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_PLAIN_PATH_RE = re.compile(r"[A-Za-z0-9/._-]+")  # no spaces, quotes or % (ssh_config expands %)
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "setsid": "util-linux",
    "mount": "mount",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


def testbed_root() -> Path:
    """Where boxes keep their state: ``$OUTLIVE_TESTBED_DIR`` or ``/tmp/outlive-testbed``."""
    root = os.environ.get("OUTLIVE_TESTBED_DIR") or "/tmp/outlive-testbed"
    if not root.startswith("/") or not _PLAIN_PATH_RE.fullmatch(root):
        raise ConfigError(
            f"OUTLIVE_TESTBED_DIR={root!r} must be an absolute path of letters, digits and /._- "
            "only, because it is written into ssh and sshd configs."
        )
    return Path(root)


def check_prerequisites() -> Path:
    """Raise TestbedUnavailable naming what is missing; return the sshd binary to run."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise TestbedUnavailable(
            "The testbed box needs root, because it creates network and PID namespaces; "
            "run it as root."
        )
    missing = {tool: pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None}
    sshd = shutil.which("sshd") or (
        "/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None
    )
    if sshd is None:
        missing["sshd"] = "openssh-server"
    if missing or sshd is None:
        names = ", ".join(sorted(missing))
        pkgs = " ".join(sorted(set(missing.values())))
        raise TestbedUnavailable(
            f"The testbed box needs {names}, not found on PATH; "
            f"install with `apt-get install {pkgs}`."
        )
    return Path(sshd).resolve()  # sshd re-executes itself and insists on an absolute path


class Box:
    """A handle on the throwaway box NAME; cheap to make, it reads the box's state dir on use.

    ``Box.up(name)`` starts the box (or finds it healthy); ``Box(name)`` attaches to one that a
    different process started. Every method that changes the box holds a lock shared by all
    processes, so concurrent test sessions with distinct names never trip over each other.
    """

    def __init__(self, name: str = DEFAULT_NAME) -> None:
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(
                f"Box name {name!r} is invalid; use 1-32 letters, digits, '-' or '_', "
                "starting with a letter or digit."
            )
        self.name = name
        self.root = testbed_root()
        self.state_dir = self.root / name
        self.netns = f"ob-{name}"

    def __repr__(self) -> str:
        return f"Box({self.name!r})"

    # -- what a test or an outlive.toml needs ------------------------------------------------------

    @property
    def ssh_config(self) -> Path:
        """The throwaway ssh config; use it as ``ssh -F <it> <name>``."""
        return self.state_dir / "ssh_config"

    @property
    def workdir(self) -> Path:
        return self.state_dir / "fs" / "work"

    @property
    def durable(self) -> Path:
        return self.state_dir / "fs" / "durable"

    @property
    def home(self) -> Path:
        """Root's home on the box, as seen from the host (the box's own, not the host's /root)."""
        return self.state_dir / "fs" / "root"

    @property
    def address(self) -> str:
        """The box's own IPv4 address."""
        return str(self._state()["box_ip"])

    @property
    def target(self) -> dict[str, str]:
        """Exactly the keys of an outlive.toml ``[targets.<name>]`` table that reaches this box."""
        return {
            "profile": "generic-ssh",
            "host": self.name,
            "ssh_config": str(self.ssh_config),
            "workdir": str(self.workdir),
            "durable": str(self.durable),
        }

    def boot_id(self) -> str:
        """The boot id the box reports in /proc/sys/kernel/random/boot_id."""
        try:
            return (self.state_dir / "boot_id").read_text().strip()
        except FileNotFoundError:
            raise self._not_up() from None

    def ssh(
        self, *argv: str, stdin: str | None = None, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ssh -F <ssh_config> <name> ARGV...`` (ssh joins ARGV for the remote shell)."""
        if not argv:
            raise TestbedError(
                "Box.ssh needs a command to run; an interactive login is not useful here."
            )
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), self.name, *argv],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def is_running(self) -> bool:
        """Whether the box's PID 1 (its sshd) is alive."""
        return self._init_pid() is not None

    def is_cut(self) -> bool:
        """Whether the box's link is down (ssh cannot reach it)."""
        return not _netns.link_is_up(_BOX_DEV, self.netns)

    def procs(self) -> dict[int, str]:
        """Host pid -> command line of every process running on the box (its PID namespace)."""
        init = self._init_pid()
        if init is None:
            return {}
        out: dict[int, str] = {}
        for pid in _netns.pidns_pids(init):
            cmd = _netns.cmdline(pid)
            if cmd is not None:
                out[pid] = cmd
        return out

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def up(cls, name: str = DEFAULT_NAME, *, timeout_s: float = 30.0) -> Box:
        """Start box NAME and wait until ssh reaches it; a healthy box is left as it is."""
        box = cls(name)
        sshd = check_prerequisites()
        with box._lock():
            box._up_locked(sshd, timeout_s)
        return box

    def down(self) -> bool:
        """Remove everything the box made; True if there was something to remove. Safe to repeat."""
        check_prerequisites()
        with self._lock():
            existed = self.state_dir.exists() or _netns.netns_exists(self.netns)
            self._stop()
            state = self._state_or_none()
            self._remove_network(state)
            if state is not None:
                self._guard_route("del", state, check=False)
            self._unmount_under(self.state_dir)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return existed

    def reboot(self, *, timeout_s: float = 30.0) -> str:
        """Kill every process of the box, give it a new boot id, start it again; the new boot id."""
        sshd = check_prerequisites()
        with self._lock():
            state = self._state()
            if not _netns.netns_exists(self.netns):
                raise self._not_up()
            self._stop()
            self._start(sshd, state, timeout_s)
        return self.boot_id()

    def cut(self) -> None:
        """Take the box's link down: ssh fails (exit 255) while the box's processes keep running."""
        check_prerequisites()
        with self._lock():
            self._state()
            if not _netns.netns_exists(self.netns):
                raise self._not_up()
            # The box's end, not the host's: a host end that is down drops its route, and packets
            # for the box would then follow the default route off this machine.
            _netns.ip("-n", self.netns, "link", "set", "dev", _BOX_DEV, "down")

    def restore(self, *, timeout_s: float = 15.0) -> None:
        """Bring the box's link back up and wait until ssh reaches the box again."""
        check_prerequisites()
        with self._lock():
            self._state()
            if not _netns.netns_exists(self.netns):
                raise self._not_up()
            _netns.ip("-n", self.netns, "link", "set", "dev", _BOX_DEV, "up")
            if self.is_running():
                self._wait_ssh(time.monotonic() + timeout_s)

    def heal(self, *, timeout_s: float = 30.0) -> None:
        """Undo what a test left behind (a cut link, a dead box) without a round trip when fine."""
        if not self.state_dir.exists() or not _netns.netns_exists(self.netns):
            Box.up(self.name, timeout_s=timeout_s)
            return
        if not self.is_running():
            self.reboot(timeout_s=timeout_s)
        if self.is_cut():
            self.restore(timeout_s=timeout_s)

    # -- internals -----------------------------------------------------------------------------

    def _up_locked(self, sshd: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        state = self._state_or_none()
        if state is not None and _netns.netns_exists(self.netns) and self.is_running():
            if self.is_cut():
                _netns.ip("-n", self.netns, "link", "set", "dev", _BOX_DEV, "up")
            with contextlib.suppress(TestbedError):
                self._wait_ssh(min(deadline, time.monotonic() + 2 * CONNECT_TIMEOUT_S))
                return  # healthy: leave it, and its jobs, alone
        # Anything half-made (a crashed run, a deleted state dir) is cleared before building anew.
        self._stop()
        self._remove_network(state)
        if state is None:
            state = self._new_state()
        self._build_network(state)
        self._write_files(state, sshd)
        self._start(sshd, state, max(1.0, deadline - time.monotonic()))

    def _new_state(self) -> BoxState:
        index = self._free_index()
        state: BoxState = {
            "name": self.name,
            "index": index,
            "netns": self.netns,
            "veth_host": f"obh{index}",
            "host_ip": f"10.77.{index}.1",
            "box_ip": f"10.77.{index}.2",
            "port": SSH_PORT,
            "created_at": time.time(),
        }
        for d in (self.state_dir, self.workdir, self.durable, self.home):
            d.mkdir(parents=True, exist_ok=True)
        _files.write_atomic(self.state_dir / "state.json", json.dumps(state, indent=2) + "\n")
        return state

    def _free_index(self) -> int:
        used: set[int] = set()
        for f in self.root.glob("*/state.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                used.add(int(json.loads(f.read_text())["index"]))
        for k in range(_MAX_INDEX):
            if k in used or _netns.link_exists(f"obh{k}"):
                continue
            if _netns.routes_mentioning(f"10.77.{k}."):  # someone else's network; stay clear
                continue
            return k
        raise TestbedError(
            f"All {_MAX_INDEX} testbed subnets 10.77.k.0/24 are taken; remove stale boxes with "
            "`python -m outlive.testing box down --name NAME`."
        )

    def _remove_network(self, state: BoxState | None) -> None:
        # The veth pair first, which is synchronous: `ip netns del` frees the namespace's devices
        # later, in the background, so the host end would linger for a moment.
        if state is not None:
            _netns.del_link(state["veth_host"])
        if _netns.netns_exists(self.netns):
            _netns.ip("netns", "del", self.netns)

    def _build_network(self, state: BoxState) -> None:
        ns, host_dev = self.netns, state["veth_host"]
        _netns.del_link(host_dev)  # a leftover of a box whose namespace went away
        _netns.ip("netns", "add", ns)
        _netns.ip("link", "add", host_dev, "type", "veth", "peer", "name", _BOX_DEV, "netns", ns)
        _netns.ip("addr", "add", f"{state['host_ip']}/24", "dev", host_dev)
        _netns.ip("link", "set", "dev", host_dev, "up")
        _netns.ip("-n", ns, "addr", "add", f"{state['box_ip']}/24", "dev", _BOX_DEV)
        _netns.ip("-n", ns, "link", "set", "dev", _BOX_DEV, "up")
        _netns.ip("-n", ns, "link", "set", "dev", "lo", "up")
        # Should the connected route ever vanish (host end down, netns gone), this keeps packets
        # for the box's subnet on this machine instead of the default route.
        self._guard_route("replace", state, check=True)

    def _guard_route(self, verb: str, state: BoxState, *, check: bool) -> None:
        _netns.ip(
            "route", verb, "unreachable", f"10.77.{state['index']}.0/24", "metric", _GUARD_METRIC,
            check=check,
        )  # fmt: skip

    def _write_files(self, state: BoxState, sshd: Path) -> None:
        for d in (self.state_dir, self.workdir, self.durable, self.home, Path("/run/sshd")):
            d.mkdir(parents=True, exist_ok=True)
        _files.write_box_files(self.name, self.state_dir, self.home, state, sshd)

    def _start(self, sshd: Path, state: BoxState, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        d = self.state_dir
        _files.write_atomic(d / "boot_id", f"{uuid.uuid4()}\n")
        pidfile = d / "sshd.pid"
        pidfile.unlink(missing_ok=True)
        with open(d / "box.log", "ab") as log:
            # setsid -f: the box belongs to no caller's session and outlives the caller; signal
            # dispositions stay default (a shell's `&` would leave SIGINT ignored in every job).
            subprocess.run(
                [
                    "setsid", "-f", "ip", "netns", "exec", self.netns,
                    "unshare", "--pid", "--fork", "--mount", "--mount-proc", "--uts",
                    "--propagation", "private", str(d / "init.sh"),
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={"PATH": _PATH, "LANG": "C.UTF-8", "HOME": "/root"},
                check=True, timeout=30,
            )  # fmt: skip
        # sshd writes its pid file once its listening socket is bound: ready, even when cut.
        while not (pidfile.exists() and pidfile.read_text().strip()):
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"The box {self.name} did not start its sshd within {timeout_s:.0f} s; "
                    f"see {d / 'box.log'}."
                )
            time.sleep(0.02)
        init = self._init_pid()
        if init is None:
            raise TestbedError(f"The box {self.name} died as it started; see {d / 'box.log'}.")
        _files.write_atomic(d / "init.pid", f"{init}\n")
        if not self.is_cut():
            self._wait_ssh(deadline)

    def _stop(self, timeout_s: float = 15.0) -> None:
        """Kill the box's PID 1 (the kernel kills all of the box with it), then the netns's rest."""
        # Found by command line too: a box whose namespace name was deleted still runs, unnamed.
        own = _netns.pids_running(
            f"{self.state_dir / 'init.sh'}", f"-f {self.state_dir / 'sshd_config'}"
        )
        init = self._init_pid() or _netns.ns_init(own)
        if init is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)
        start = time.monotonic()
        while True:
            left = _netns.netns_pids(self.netns) + [p for p in own if _netns.cmdline(p)]
            if not left:
                return
            waited_s = time.monotonic() - start
            if waited_s > timeout_s:
                raise TestbedError(
                    f"Processes {left} of the box {self.name} survived SIGKILL "
                    f"for {timeout_s:.0f} s."
                )
            # The `unshare` parent reaps PID 1 and exits by itself; give it a moment first, since
            # an orphaned zombie is never reaped where the host's own init does not reap. Then
            # kill what is left: anything a test started with `ip netns exec`.
            if init is None or waited_s > 1.0:
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def _init_pid(self) -> int | None:
        return _netns.ns_init(_netns.netns_pids(self.netns))

    def _wait_ssh(self, deadline: float) -> None:
        """Wait until ``ssh -F cfg name true`` succeeds, or raise once DEADLINE has passed."""
        last = ""
        ip = self.address
        while True:
            try:
                with socket.create_connection((ip, SSH_PORT), timeout=1.0):
                    pass
            except OSError as e:
                last = str(e)
            else:
                proc = self.ssh("true", timeout_s=2 * CONNECT_TIMEOUT_S)
                if proc.returncode == 0:
                    return
                last = proc.stderr.strip() or f"ssh exit status {proc.returncode}"
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"The box {self.name} did not accept `ssh -F {self.ssh_config} {self.name}` in "
                    f"time ({last}); see {self.state_dir / 'box.log'}."
                )
            time.sleep(0.05)

    def _state_or_none(self) -> BoxState | None:
        try:
            state: BoxState = json.loads((self.state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return state

    def _state(self) -> BoxState:
        state = self._state_or_none()
        if state is None:
            raise self._not_up()
        return state

    def _not_up(self) -> TestbedError:
        return TestbedError(
            f"No testbed box named {self.name} is up; start it with "
            f"`python -m outlive.testing box up --name {self.name}`."
        )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @staticmethod
    def _unmount_under(path: Path) -> None:
        """Lazily unmount anything a test mounted inside the box's files (a tmpfs, say)."""
        prefix = str(path) + "/"
        try:
            mounts = Path("/proc/self/mounts").read_text().splitlines()
        except OSError:
            return
        points = [m.split()[1] for m in mounts if len(m.split()) > 1]
        for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
