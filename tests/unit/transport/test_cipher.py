"""The cipher outlive's ssh asks for first (transport/cipher.py): AES-GCM where this CPU has
AES instructions and no ssh configuration the connection reads says ``Ciphers`` itself. The
list is checked by the real ``ssh -G`` (which resolves options, connecting nowhere)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from outlive.config import Connection, JobPolicy, Placement, Target
from outlive.transport import cipher
from outlive.transport.ssh import SshTransport


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A home of the test's own, no system file, and nothing remembered between tests."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(cipher, "SYSTEM_CONFIGS", ())
    monkeypatch.setattr(cipher, "_said_ciphers", {})
    monkeypatch.setattr(cipher, "_has_aes", True)
    return home


def transport(ssh_config: str | None) -> SshTransport:
    connection = Connection(transport="ssh", host="gpu-box", ssh_config=ssh_config)
    placement = Placement(workdir="/w", durable="/w/.outlive/durable")
    return SshTransport(
        Target(name="gpu", profile="generic-ssh", kind="ssh", backend="process",
               connection=connection, placement=placement, policy=JobPolicy())
    )  # fmt: skip


def resolved_ciphers(argv: list[str]) -> list[str]:
    shown = subprocess.run(
        [*argv, "-G", "--", "gpu-box"], capture_output=True, text=True, check=True
    ).stdout
    (line,) = [x for x in shown.splitlines() if x.startswith("ciphers ")]
    return line.split(" ", 1)[1].split(",")


def own_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cfg"
    path.write_text(text)
    return str(path)


def test_aes_gcm_comes_first_and_every_default_cipher_stays(tmp_path: Path) -> None:
    argv = transport(own_config(tmp_path, "")).ssh_argv()
    assert f"Ciphers={cipher.AES_FIRST}" in argv
    got = resolved_ciphers(argv)
    assert got[:2] == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    default = resolved_ciphers(["ssh", "-F", "/dev/null"])
    assert sorted(got) == sorted(default)  # the same offer as ssh's own, reordered


@pytest.mark.parametrize(
    "text",
    [
        "Ciphers aes256-ctr\n",
        "Host gpu-box\n  ciphers=aes256-gcm@openssh.com\n",
        "Include extra.conf\n",  # relative: under ~/.ssh, which says Ciphers
    ],
)
def test_a_config_that_says_ciphers_is_left_to_say_it(
    tmp_path: Path, fresh: Path, text: str
) -> None:
    (fresh / ".ssh" / "extra.conf").write_text("Ciphers aes256-ctr\n")
    argv = transport(own_config(tmp_path, text)).ssh_argv()
    assert not any(a.startswith("Ciphers=") for a in argv)
    assert resolved_ciphers(argv)[0] != "aes128-gcm@openssh.com" or "aes128-gcm" in text


def test_the_users_own_config_counts_where_no_config_file_is_given(fresh: Path) -> None:
    ssh_transport = transport(None)
    assert any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())
    cipher._said_ciphers.clear()
    (fresh / ".ssh" / "config").write_text("# Ciphers chacha20-poly1305@openssh.com\n")
    assert any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())  # a comment
    cipher._said_ciphers.clear()
    (fresh / ".ssh" / "config").write_text("Host *\n    Ciphers chacha20-poly1305@openssh.com\n")
    assert not any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())


def test_a_system_file_that_says_ciphers_counts_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "etc_ssh_config"
    system.write_text("Ciphers aes256-ctr\n")
    monkeypatch.setattr(cipher, "SYSTEM_CONFIGS", (str(system),))
    ssh_transport = transport(None)
    assert not any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())


def test_no_aes_instructions_no_preference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cipher, "_has_aes", False)
    assert not any(a.startswith("Ciphers=") for a in transport(None).ssh_argv())


@pytest.mark.parametrize(
    ("cpuinfo", "has"),
    [
        (b"processor\t: 0\nflags\t\t: fpu sse2 aes avx2 sha_ni\n\n", True),
        (b"processor\t: 0\nflags\t\t: fpu sse2 avx2\n\n", False),
        (b"processor\t: 0\nFeatures\t: fp asimd aes pmull sha1 sha2\n\n", True),
        (b"processor\t: 0\nFeatures\t: fp asimd aesx\n\n", False),
        (b"", False),
    ],
)
def test_the_cpu_flags_are_read_as_the_kernel_writes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpuinfo: bytes, has: bool
) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_bytes(cpuinfo)
    real_open = open

    def fake_open(path: str, *args: object, **kwargs: object) -> object:
        return real_open(fake if path == "/proc/cpuinfo" else path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(cipher.sys, "platform", "linux")
    assert cipher._read_cpu_has_aes() is has


def test_a_long_lived_process_sees_a_config_changed_under_it(fresh: Path) -> None:
    """The daemon builds ssh commands for hours: a ``Ciphers`` the user adds later (in the
    file itself, or in a new file an ``Include`` picks up) is theirs from the next command on,
    with nothing cleared by hand; reading is skipped only while nothing changed."""
    config = fresh / ".ssh" / "config"
    config.write_text("Include conf.d/*.conf\nHost gpu-box\n    User me\n")
    (fresh / ".ssh" / "conf.d").mkdir()
    ssh_transport = transport(None)
    assert any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())
    remembered = cipher._said_ciphers[None]
    assert any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())
    assert cipher._said_ciphers[None] is remembered  # unchanged: not read again

    (fresh / ".ssh" / "conf.d" / "fast.conf").write_text("Ciphers aes256-ctr\n")
    assert not any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())
    (fresh / ".ssh" / "conf.d" / "fast.conf").unlink()
    assert any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())

    config.write_text("Host *\n    Ciphers chacha20-poly1305@openssh.com\n")
    assert not any(a.startswith("Ciphers=") for a in ssh_transport.ssh_argv())
    assert resolved_ciphers(ssh_transport.ssh_argv())[0] == "chacha20-poly1305@openssh.com"
