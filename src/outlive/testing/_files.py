"""The files that make a testbed box: keys, sshd and ssh configs, known_hosts, passwd, init.sh."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TypedDict

from outlive.testing._errors import TestbedError

CONNECT_TIMEOUT_S = 5  # in the ssh config; a cut link fails ssh within it


class BoxState(TypedDict):
    """A box's ``state.json``: its network, chosen once when it is first made."""

    name: str
    index: int  # k of its subnet 10.77.k.0/24
    netns: str
    veth_host: str
    host_ip: str
    box_ip: str
    port: int
    created_at: float


def write_box_files(name: str, d: Path, home: Path, state: BoxState, sshd: Path) -> None:
    """(Re)write everything box NAME needs into its state dir D; keys are made once and kept."""
    for key, comment in (("host_ed25519", "host"), ("id_ed25519", "user")):
        if not (d / key).exists():
            run(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                "-C", f"outlive-testbed-{name}-{comment}", "-f", str(d / key),
            )  # fmt: skip
    shutil.copyfile(d / "id_ed25519.pub", d / "authorized_keys")
    host_key = " ".join((d / "host_ed25519.pub").read_text().split()[:2])
    hostport = state["box_ip"] if state["port"] == 22 else f"[{state['box_ip']}]:{state['port']}"
    # Pre-seeded, so the first contact is already verified and host-key checking stays on.
    write_atomic(d / "known_hosts", f"{hostport} {host_key}\n")
    write_atomic(d / "passwd", _passwd_with_root_home(home))
    write_atomic(d / "sshd_config", _sshd_config(d, state))
    run(str(sshd), "-t", "-f", str(d / "sshd_config"))
    write_atomic(d / "ssh_config", _ssh_config(name, d, state))
    init = (
        "#!/bin/sh\n"
        f"# PID 1 of the outlive testbed box {name}: its own boot id, home and "
        "hostname, then sshd.\n"
        "set -e\n"
        f"mount --bind {shlex.quote(str(d / 'boot_id'))} /proc/sys/kernel/random/boot_id\n"
        "# Root's home is the box's own: none of the host's dotfiles, keys or caches (a fresh\n"
        "# machine's), while /root stays reachable by path (a venv's python may live there).\n"
        f"mount --bind {shlex.quote(str(d / 'passwd'))} /etc/passwd\n"
        f"echo {shlex.quote(name)} > /proc/sys/kernel/hostname\n"
        "mkdir -p /run/sshd\n"
        f"exec {shlex.quote(str(sshd))} -D -e -f {shlex.quote(str(d / 'sshd_config'))}\n"
    )
    write_atomic(d / "init.sh", init, mode=0o755)


def _passwd_with_root_home(home: Path) -> str:
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "root" and len(fields) == 7:
            fields[5] = str(home)
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def _sshd_config(d: Path, state: BoxState) -> str:
    return f"""\
# sshd of the outlive testbed box {state["name"]}; written by outlive.testing on every up.
Port {state["port"]}
ListenAddress {state["box_ip"]}
HostKey {d / "host_ed25519"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
MaxSessions 100
MaxStartups 100:30:200
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
# The post-quantum default (sntrup761) costs ~0.4 s of CPU per connection here; many servers
# offer only curve25519, and tests make hundreds of connections.
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
"""


def _ssh_config(name: str, d: Path, state: BoxState) -> str:
    return f"""\
# ssh config of the outlive testbed box {name}: ssh -F {d / "ssh_config"} {name}
Host {name}
  HostName {state["box_ip"]}
  Port {state["port"]}
  User root
  IdentityFile {d / "id_ed25519"}
  IdentitiesOnly yes
  UserKnownHostsFile {d / "known_hosts"}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking accept-new
  UpdateHostKeys no
  BatchMode yes
  ConnectTimeout {CONNECT_TIMEOUT_S}
  LogLevel ERROR
"""


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def run(*argv: str) -> None:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode != 0:
        why = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise TestbedError(f"`{' '.join(argv)}` failed: {why}.")
