"""Which cipher outlive's own ssh connections ask for first.

OpenSSH offers chacha20-poly1305 first by default; on a CPU with AES instructions AES-GCM moves
the same bytes for a fraction of the CPU (128 MiB pulled over the testbed link: rsync's side
0.20-0.28 user CPU-s with the default, 0.10-0.13 with AES-GCM; the box's sshd saves alike), and
on a fast link ssh's cipher is what limits a transfer. So where this machine's CPU has AES
instructions, outlive's ssh offers the same ciphers as OpenSSH's default, AES-GCM first; the
server still picks from its own list, so nothing it refuses is used. Where the user (or the
system, or the target's ``ssh_config``) says ``Ciphers`` themselves, outlive leaves it to them:
their list is a policy, not a default. Each name in the list exists since OpenSSH 6.5 (2014).
"""

from __future__ import annotations

import glob
import os
import sys

from outlive.transport.ahead import stat_of

# OpenSSH's default offer (ssh_config(5), 6.5 to 9.x), with AES-GCM moved to the front.
AES_FIRST = ",".join(
    [
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
    ]
)
SYSTEM_CONFIGS = ("/etc/ssh/ssh_config",)
_CPUINFO_READ_BYTES = 64 * 1024  # the first processor's block is well within this

_has_aes: bool | None = None
# Per config: the files (and Include directories) it was read from with their stat, and whether
# they name Ciphers. A long-lived process (the daemon) re-reads them once one has changed.
_said_ciphers: dict[str | None, tuple[tuple[tuple[str, list[int] | None], ...], bool]] = {}


def preferred_ciphers(ssh_config: str | None) -> str | None:
    """The ``Ciphers`` list for an ssh that reads ``ssh_config`` (None: the user's own
    ``~/.ssh/config``), or None where outlive leaves the cipher to ssh and its config."""
    if not cpu_has_aes() or config_sets_ciphers(ssh_config):
        return None
    return AES_FIRST


def cpu_has_aes() -> bool:
    """Whether this machine's CPU has AES instructions (x86 ``aes``, Arm ``aes`` feature);
    every Mac has them. Read once per process."""
    global _has_aes
    if _has_aes is None:
        _has_aes = _read_cpu_has_aes()
    return _has_aes


def _read_cpu_has_aes() -> bool:
    if sys.platform == "darwin":
        return True  # Intel Macs since 2010 and Apple silicon
    try:
        with open("/proc/cpuinfo", "rb") as f:
            head = f.read(_CPUINFO_READ_BYTES)
    except OSError:
        return False
    for line in head.splitlines():
        key, _, value = line.partition(b":")
        if key.strip().lower() in (b"flags", b"features") and b"aes" in value.split():
            return True
    return False


def config_sets_ciphers(ssh_config: str | None) -> bool:
    """Whether the ssh configuration this ssh reads names ``Ciphers`` anywhere (the user's
    file or ``-F``'s, the system's, and the files they ``Include``). Read again only when one
    of those files, or a directory an ``Include`` looks in, has changed since."""
    said = _said_ciphers.get(ssh_config)
    if said is not None and all(stat_of(path) == was for path, was in said[0]):
        return said[1]
    user = ssh_config or os.path.expanduser("~/.ssh/config")
    files = [user] + ([] if ssh_config else list(SYSTEM_CONFIGS))
    seen: list[str] = []
    names = any(_names_ciphers(f, 0, seen) for f in files)
    _said_ciphers[ssh_config] = (tuple((path, stat_of(path)) for path in seen), names)
    return names


def files_read(ssh_config: str | None) -> list[str]:
    """The files and ``Include`` directories the decision for ``ssh_config`` was read from (a
    command line recorded with it is current while none of them changes)."""
    config_sets_ciphers(ssh_config)
    return [path for path, _ in _said_ciphers[ssh_config][0]]


def _names_ciphers(path: str, depth: int, seen: list[str]) -> bool:
    seen.append(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    # ssh_config(5): a relative Include is under /etc/ssh from a system file, else ~/.ssh
    base = "/etc/ssh" if path.startswith("/etc/ssh/") else os.path.expanduser("~/.ssh")
    for raw in lines:
        words = raw.replace("=", " ", 1).split()
        if not words or words[0].startswith("#"):
            continue
        key = words[0].lower()
        if key == "ciphers":
            return True
        if key == "include" and depth < 4:
            for pattern in words[1:]:
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(base, pattern)
                seen.append(os.path.dirname(pattern))  # a file added there changes the glob
                if any(_names_ciphers(p, depth + 1, seen) for p in sorted(glob.glob(pattern))):
                    return True
    return False
