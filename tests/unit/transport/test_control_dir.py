"""The ControlPath directory is used only when it is this user's own and private; otherwise a
local user could plant a fake master socket that every ssh here would talk through."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from outlive.daemon.client import DIR_ENV, socket_dir
from outlive.errors import TransportError
from outlive.transport.ssh import SshTransport, control_dir


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temp root for this test: control_dir() and the daemon look only here."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _ours(tmp_root: Path) -> Path:
    return tmp_root / f"outlive-{os.getuid()}"


def _refused(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, ssh_transport: SshTransport, why: str
) -> None:
    d = _ours(tmp_root)
    with pytest.raises(TransportError) as info:
        control_dir()
    msg = str(info.value)
    assert msg.startswith(f"{d} is not safe for ssh's control sockets ({why}")
    assert "remove it, or set TMPDIR" in msg and msg.count(". ") == 0 and "\n" not in msg
    with pytest.raises(TransportError):
        ssh_transport.ssh_argv()  # no ssh is ever started with such a ControlPath
    monkeypatch.setenv(DIR_ENV, str(d))
    assert socket_dir() is None  # the daemon refuses it by the same rule


def test_a_missing_directory_is_made_private(tmp_root: Path) -> None:
    d = control_dir()
    assert d == _ours(tmp_root)
    st = d.lstat()
    assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700
    assert control_dir() == d  # and is used again


def test_a_directory_open_to_others_is_refused_and_left_alone(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, ssh_transport: SshTransport
) -> None:
    d = _ours(tmp_root)
    d.mkdir()
    d.chmod(0o777)
    _refused(tmp_root, monkeypatch, ssh_transport, "its mode 0777 lets group or others in")
    assert d.stat().st_mode & 0o777 == 0o777 and list(d.iterdir()) == []


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a directory to another uid")
def test_a_directory_owned_by_someone_else_is_refused(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, ssh_transport: SshTransport
) -> None:
    d = _ours(tmp_root)
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    _refused(tmp_root, monkeypatch, ssh_transport, "it belongs to uid 65534")
    assert list(d.iterdir()) == []


def test_a_symlink_is_refused_even_to_a_private_directory_of_ours(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, ssh_transport: SshTransport
) -> None:
    elsewhere = tmp_root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    _ours(tmp_root).symlink_to(elsewhere)
    _refused(tmp_root, monkeypatch, ssh_transport, "it is a symlink")
    assert list(elsewhere.iterdir()) == []


def test_a_file_in_its_place_is_refused(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, ssh_transport: SshTransport
) -> None:
    _ours(tmp_root).write_text("")
    _refused(tmp_root, monkeypatch, ssh_transport, "it is not a directory")
