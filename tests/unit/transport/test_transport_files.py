"""How files move: the rsync argv each transport builds (flags, order, quoting), exercised for
real with hostile paths; the tar upload; the tunnel's ``ssh -L``; and the guard that no module
outside ``transport/`` builds an ssh command line."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

import outlive
from outlive.transport.files import Direction, RsyncOptions, rsync_argv, tar_upload
from outlive.transport.local import LocalTransport
from outlive.transport.ssh import SshTransport

# A file or directory name that a shell would split, expand or run if it ever saw it unquoted.
HOSTILE = "a b'c\"d $(touch PWNED) `id` ;x\nnew line é"


def test_local_rsync_has_plain_paths_and_no_remote_shell() -> None:
    t = LocalTransport()
    opts = RsyncOptions(stats=True, timeout_s=7, compress=True, bwlimit_kbps=500, files_from="L")
    assert t.rsync_argv("from_target", "/here/", "/there/", opts) == [
        "rsync", "-a", "--partial", "--protect-args", "--info=progress2", "--stats",
        "--timeout=7", "-z", "--bwlimit=500", "--from0", "--files-from=L",
        "--", "/there/", "/here/",
    ]  # fmt: skip
    up = t.rsync_argv("to_target", "/here/", "/there/", RsyncOptions(make_dest=True))
    assert up == [
        "rsync", "-a", "--partial", "--protect-args", "--mkpath", "--", "/here/", "/there/",
    ]  # fmt: skip


def test_ssh_rsync_rides_the_master_and_names_the_host(
    tmp_path: Path, ssh_transport: SshTransport
) -> None:
    t = ssh_transport
    argv = t.rsync_argv("to_target", "/proj/", f"/w/{HOSTILE}/", RsyncOptions(files_from="-"))
    e = argv[argv.index("-e") + 1]
    assert shlex.split(e) == t.ssh_argv()  # rsync splits -e on spaces and honours quotes
    assert "ControlMaster=auto" in e and "BatchMode=yes" in e
    assert "StrictHostKeyChecking" not in e  # host-key checking stays on
    assert argv[-3:] == ["--", "/proj/", f"gpu-box:/w/{HOSTILE}/"]
    down = t.rsync_argv("from_target", f"{tmp_path}/", "/box/d/", RsyncOptions())
    assert down[-2:] == ["gpu-box:/box/d/", f"{tmp_path}/"]


def test_the_remote_mkdir_quotes_a_hostile_destination_as_one_word(
    ssh_transport: SshTransport,
) -> None:
    argv = ssh_transport.rsync_argv(
        "to_target", "/p/", f"/w/{HOSTILE}/", RsyncOptions(make_dest=True)
    )
    (path_opt,) = [a for a in argv if a.startswith("--rsync-path=")]
    command = path_opt.removeprefix("--rsync-path=")
    assert shlex.split(command) == ["mkdir", "-p", f"/w/{HOSTILE}", "&&", "rsync"]
    assert "--mkpath" not in argv


def test_a_root_destination_is_made_as_root_not_as_an_empty_path(
    ssh_transport: SshTransport,
) -> None:
    argv = ssh_transport.rsync_argv("to_target", "/p/", "//", RsyncOptions(make_dest=True))
    assert "--rsync-path=mkdir -p / && rsync" in argv


def test_a_local_path_with_a_colon_is_not_read_as_a_host() -> None:
    argv = LocalTransport().rsync_argv("to_target", "a:b/", "/abs:x/", RsyncOptions())
    assert argv[-2:] == ["./a:b/", "/abs:x/"]


class _FakeSshTransport(LocalTransport):
    """rsync through a remote shell that does what ssh does with its command words: join them
    with spaces and hand them to the login shell (here, on this machine)."""

    def __init__(self, tmp_path: Path) -> None:
        self.shell = tmp_path / "fake ssh's dir" / "ssh"
        self.shell.parent.mkdir()
        self.shell.write_text('#!/bin/sh\nshift\nexec sh -c "$*"\n')
        self.shell.chmod(0o755)

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        return rsync_argv(direction, here, there, opts, remote_shell=[str(self.shell)], host="h")


def test_hostile_paths_land_intact_through_a_remote_shell(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / HOSTILE).mkdir(parents=True)
    (src / HOSTILE / HOSTILE).write_text("payload")
    dest = tmp_path / "box" / HOSTILE / "deep"
    back = tmp_path / "back"
    t = _FakeSshTransport(tmp_path)
    for argv in (
        t.rsync_argv("to_target", f"{src}/", f"{dest}/", RsyncOptions(make_dest=True)),
        t.rsync_argv("from_target", f"{back}/", f"{dest}/", RsyncOptions(stats=True)),
    ):
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert done.returncode == 0, done.stderr
    assert (dest / HOSTILE / HOSTILE).read_text() == "payload"  # made in the same round trip
    assert (back / HOSTILE / HOSTILE).read_text() == "payload"
    assert not list(tmp_path.rglob("PWNED"))  # nothing was ever run by a shell


def test_local_rsync_and_tar_upload_create_a_hostile_destination(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / HOSTILE).write_text("x")
    t = LocalTransport()
    dest = tmp_path / "r" / HOSTILE / "d"
    argv = t.rsync_argv("to_target", f"{src}/", f"{dest}/", RsyncOptions(make_dest=True))
    assert subprocess.run(argv, capture_output=True, timeout=60, cwd=tmp_path).returncode == 0
    assert (dest / HOSTILE).read_text() == "x"
    tar_dest = tmp_path / "t" / HOSTILE
    done = tar_upload(t, src, [HOSTILE], str(tar_dest))
    assert done.returncode == 0, done.stderr
    assert (tar_dest / HOSTILE).read_text() == "x"
    assert not list(tmp_path.rglob("PWNED"))


def test_tunnel_forwards_loopback_only_and_fails_fast(ssh_transport: SshTransport) -> None:
    t = ssh_transport
    argv = t.forward_argv(6006, 16006)
    assert argv[: len(t.ssh_argv())] == t.ssh_argv()
    assert argv[len(t.ssh_argv()) :] == [
        "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:16006:127.0.0.1:6006",
        "--", "gpu-box",
    ]  # fmt: skip


def test_only_transport_builds_an_ssh_command_line() -> None:
    src = Path(outlive.__file__).parent
    # testing/ is the testbed's own client for its throwaway boxes, not outlive's transport
    skip = {src / "transport", src / "testing"}
    pattern = re.compile(r"ssh_argv\(|isinstance\([^)]*(Ssh|Local)?Transport\)|\[\s*\"ssh\"")
    found = [
        f"{path.relative_to(src)}:{n}: {line.strip()}"
        for path in sorted(src.rglob("*.py"))
        if not any(d in path.parents for d in skip)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "TransportError" not in line
    ]
    assert found == []


@pytest.mark.parametrize("direction", ["to_target", "from_target"])
def test_every_flag_off_is_the_bare_resumable_copy(direction: Direction) -> None:
    argv = LocalTransport().rsync_argv(direction, "/h", "/t", RsyncOptions())
    assert argv[:5] == ["rsync", "-a", "--partial", "--protect-args", "--"]
