"""Thin wrappers over ip(8) and /proc for the testbed box: network namespaces, veth links, and
the processes that live in a namespace (seen from the host)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from outlive.testing._errors import TestbedError

NETNS_DIR = Path("/run/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; with CHECK, a failure raises TestbedError carrying ip's own complaint."""
    proc = subprocess.run(
        ["ip", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    if check and proc.returncode != 0:
        why = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise TestbedError(f"`ip {' '.join(args)}` failed: {why}.")
    return proc


def netns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def link_exists(dev: str, ns: str | None = None) -> bool:
    return ip(*_in(ns), "link", "show", "dev", dev, check=False).returncode == 0


def del_link(dev: str, timeout_s: float = 5.0) -> None:
    """Delete DEV (and its veth peer) if it exists, and wait until it is gone."""
    deadline = time.monotonic() + timeout_s
    while link_exists(dev):
        ip("link", "del", "dev", dev, check=False)  # it may vanish by itself meanwhile
        if time.monotonic() > deadline:
            raise TestbedError(f"The link {dev} could not be deleted within {timeout_s:.0f} s.")
        time.sleep(0.02)


def link_is_up(dev: str, ns: str | None = None) -> bool:
    """Whether DEV is administratively up (the UP flag, whatever its carrier)."""
    out = ip(*_in(ns), "-o", "link", "show", "dev", dev, check=False).stdout
    start, end = out.find("<"), out.find(">")
    return 0 <= start < end and "UP" in out[start + 1 : end].split(",")


def routes_mentioning(prefix: str) -> bool:
    """Whether any route of the main table mentions an address starting with PREFIX."""
    return prefix in ip("-o", "route", "show", "table", "all", check=False).stdout


def netns_pids(ns: str) -> list[int]:
    """Host pids of every live process whose network namespace is NS (like ``ip netns pids``)."""
    return _pids_sharing(NETNS_DIR / ns, "net")


def pidns_pids(init_pid: int) -> list[int]:
    """Host pids of every live process in the PID namespace whose PID 1 is INIT_PID."""
    return _pids_sharing(Path(f"/proc/{init_pid}/ns/pid"), "pid")


def ns_init(pids: list[int]) -> int | None:
    """The host pid of the one process among PIDS that is PID 1 of a nested PID namespace."""
    for pid in pids:
        nspid = _status_field(pid, "NSpid")
        if nspid is not None and len(nspid) >= 2 and nspid[-1] == "1":
            return pid
    return None


def cmdline(pid: int) -> str | None:
    """The command line of PID joined by spaces, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # a zombie (or a kernel thread): nothing left to kill
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def pids_running(*needles: str) -> list[int]:
    """Host pids of live processes whose command line contains any of NEEDLES."""
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmd = cmdline(int(entry))
            if cmd and any(n in cmd for n in needles):
                pids.append(int(entry))
    return pids


def _pids_sharing(ns_file: Path, kind: str) -> list[int]:
    try:
        st = os.stat(ns_file)
    except OSError:
        return []
    key = (st.st_dev, st.st_ino)
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{entry}/ns/{kind}")
        except OSError:  # gone, or a zombie: it has no namespaces any more
            continue
        if (s.st_dev, s.st_ino) == key:
            pids.append(int(entry))
    return pids


def _status_field(pid: int, field: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split()[1:]
    return None


def _in(ns: str | None) -> tuple[str, ...]:
    return ("-n", ns) if ns else ()
