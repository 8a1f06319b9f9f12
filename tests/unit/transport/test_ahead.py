"""Connect ahead (``transport.ahead``): which ``outlive pull`` starts its box's ssh before its
imports, and which starts nothing. The ssh here is a stand-in first on PATH that records it
ran; the real handshake is tests/integration/ssh/test_connect_ahead.py."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

from outlive.store import RunRecord, Store
from outlive.transport import ahead

ARGV = ["ssh", "-o", "BatchMode=yes", "-N", "--", "gpu-box"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    proj = tmp_path / "proj"
    (proj / ".outlive").mkdir(parents=True)
    (proj / "outlive.toml").write_text('[targets.box]\nhost = "gpu-box"\n')
    store = Store(proj / ".outlive")
    for run_id, name, target in [
        ("20261204-010101-aaaaaa", "train", "box"),
        ("20261204-010102-bbbbbb", "both", "box"),
        ("20261204-010103-cccccc", "both", "other"),
    ]:
        store.add(RunRecord(run_id, name, target, ["true"], "/r", "/c", 1.0))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ssh-ran"
    (bin_dir / "ssh").write_text(f'#!/bin/sh\necho "$*" >> "{marker}"\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(proj)
    return proj


def remember(
    proj: Path, argv: list[str] = ARGV, target: str = "box", socket: str | None = None
) -> None:
    ahead.remember(str(proj / ".outlive"), str(proj / "outlive.toml"), target, argv, lambda: socket)


def ran(proj: Path) -> list[str]:
    ahead.settle(10.0)
    marker = proj.parent / "ssh-ran"
    return marker.read_text().splitlines() if marker.exists() else []


def test_a_current_record_starts_its_ssh_for_an_id_a_name_or_a_prefix(project: Path) -> None:
    remember(project)
    for ref in ("20261204-010101-aaaaaa", "train", "20261204-010101"):
        assert ahead.connect_for(["pull", ref, "--json"])
    assert ahead.connect_for(["logs", "train", "-f"])
    assert ahead.connect_for(["cancel", "train"])
    assert ran(project) == ["-o BatchMode=yes -N -- gpu-box"] * 5


def test_the_record_is_private_and_rewritten_only_when_it_changes(project: Path) -> None:
    remember(project)
    path = project / ".outlive" / ahead.RECORD_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.stat().st_ino
    remember(project)
    assert path.stat().st_ino == before  # the same record: not written again
    remember(project, [*ARGV[:-1], "other-box"])
    assert path.stat().st_ino != before
    assert marshal.loads(path.read_bytes())["targets"]["box"]["argv"][-1] == "other-box"


@pytest.mark.parametrize(
    "argv",
    [
        ["pull"],
        ["pull", ""],
        ["pull", "--to", "x", "train"],  # an option first: not read here
        ["pull", "train", "--help"],
        ["pull", "nope"],  # no such run
        ["pull", "both"],  # a name on two targets
        ["pull", "train", "-t", "other"],  # the pull will refuse it
        ["pull", "train", "--target=other"],
        ["status", "train"],
        ["run", "train"],
        ["explain", "train"],  # a file or a run: not read here
    ],
)
def test_nothing_starts_where_the_run_or_command_does_not_say_one_box(
    project: Path, argv: list[str]
) -> None:
    remember(project)
    assert not ahead.connect_for(argv)
    assert ran(project) == []


def test_a_record_from_another_config_or_environment_starts_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remember(project)
    config = project / "outlive.toml"
    config.write_text(config.read_text() + "# edited\n")
    assert not ahead.connect_for(["pull", "train"])
    remember(project)
    monkeypatch.setenv("TMPDIR", str(project))  # another control-socket directory
    assert not ahead.connect_for(["pull", "train"])
    monkeypatch.delenv("TMPDIR")
    remember(project)
    (project / "pyproject.toml").write_text("")  # still outlive.toml: the record holds
    assert ahead.connect_for(["pull", "train"])
    config.unlink()  # now pyproject.toml is the config: another file than the record's
    assert not ahead.connect_for(["pull", "train"])
    assert len(ran(project)) == 1


def test_a_record_built_from_an_ssh_config_since_changed_starts_nothing(
    project: Path, tmp_path: Path
) -> None:
    """A target's own ssh_config (or a file it Includes) read to build the command line, then
    edited: e.g. a Ciphers line the recorded ``-o Ciphers=`` would override. The transport
    names the files (``SshTransport.config_files``) and a change to one retires the record."""
    ssh_config = tmp_path / "box_ssh_config"
    ssh_config.write_text("Host gpu-box\n    User me\n")
    included = tmp_path / "conf.d"
    included.mkdir()
    ahead.remember(str(project / ".outlive"), str(project / "outlive.toml"), "box", ARGV,
                   lambda: None, [str(ssh_config), str(included)])  # fmt: skip
    assert ahead.connect_for(["pull", "train"])
    ssh_config.write_text("Host gpu-box\n    User me\n    Ciphers aes256-ctr\n")
    assert not ahead.connect_for(["pull", "train"])
    ahead.remember(str(project / ".outlive"), str(project / "outlive.toml"), "box", ARGV,
                   lambda: None, [str(ssh_config), str(included)])  # fmt: skip
    assert ahead.connect_for(["pull", "train"])
    (included / "new.conf").write_text("Ciphers aes256-ctr\n")  # the directory changes
    assert not ahead.connect_for(["pull", "train"])
    assert len(ran(project)) == 2


def test_the_transport_names_the_ssh_files_its_command_line_was_built_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outlive.config import Connection, JobPolicy, Placement, Target
    from outlive.transport import cipher
    from outlive.transport.ssh import SshTransport

    monkeypatch.setattr(cipher, "_said_ciphers", {})
    monkeypatch.setattr(cipher, "SYSTEM_CONFIGS", ())
    ssh_config = tmp_path / "cfg"
    ssh_config.write_text(f"Include {tmp_path}/inc/*.conf\n")
    connection = Connection(transport="ssh", host="gpu-box", ssh_config=str(ssh_config))
    placement = Placement(workdir="/w", durable="/w/.outlive/durable")
    transport = SshTransport(
        Target(name="gpu", profile="generic-ssh", kind="ssh", backend="process",
               connection=connection, placement=placement, policy=JobPolicy())
    )  # fmt: skip
    assert transport.config_files() == [str(ssh_config), str(tmp_path / "inc")]


@pytest.mark.parametrize(
    "planted",
    [
        {"targets": {"box": {"argv": ["sh", "-c", "touch pwned", "-N", "--", "x"]}}},
        {"targets": {"box": {"argv": ["ssh", "--", "gpu-box", "reboot"]}}},
        {"targets": {"box": {"argv": "ssh -N -- gpu-box"}}},
        {"targets": {"box": {"argv": ["ssh", 1, "-N", "--", "gpu-box"]}}},
        {"targets": ["box"]},
        [],
    ],
)
def test_a_record_outlive_did_not_write_runs_nothing(project: Path, planted: object) -> None:
    remember(project)
    path = project / ".outlive" / ahead.RECORD_NAME
    data = marshal.loads(path.read_bytes())
    built = data["targets"]["box"]["built_from"]
    if isinstance(planted, dict) and isinstance(planted["targets"], dict):
        planted["targets"]["box"]["built_from"] = built  # current in every other way
    path.write_bytes(marshal.dumps(planted))
    assert not ahead.connect_for(["pull", "train"])
    assert ran(project) == []
    assert not (project / "pwned").exists()


def test_a_record_others_may_write_or_a_damaged_one_runs_nothing(project: Path) -> None:
    remember(project)
    path = project / ".outlive" / ahead.RECORD_NAME
    path.chmod(0o666)
    assert not ahead.connect_for(["pull", "train"])
    path.chmod(0o600)
    path.write_text("{not json")
    assert not ahead.connect_for(["pull", "train"])
    path.unlink()
    path.symlink_to(project / "outlive.toml")
    assert not ahead.connect_for(["pull", "train"])
    assert ran(project) == []


def test_no_registry_or_a_damaged_one_starts_nothing(project: Path) -> None:
    remember(project)
    registry = project / ".outlive" / ahead.REGISTRY_NAME
    for extra in registry.parent.glob("registry.db-*"):
        extra.unlink()
    registry.write_bytes(b"not a database")
    assert not ahead.connect_for(["pull", "train"])
    registry.unlink()
    assert not ahead.connect_for(["pull", "train"])
    assert ran(project) == []


def test_looking_a_run_up_leaves_the_state_directory_as_it_was(project: Path) -> None:
    """A refused pull must write nothing: the registry lookup may not leave SQLite's -wal and
    -shm files behind (a read-only connection cannot remove them), and a project that never
    reached an SSH box does not open its registry at all."""
    state = project / ".outlive"
    for extra in state.glob("registry.db-*"):
        extra.unlink()
    before = sorted(p.name for p in state.iterdir())
    assert not ahead.connect_for(["pull", "train"])  # no record: the registry stays shut
    assert sorted(p.name for p in state.iterdir()) == before
    remember(project)
    before = sorted(p.name for p in state.iterdir())
    assert ahead.connect_for(["pull", "train"])
    assert ran(project) == ["-o BatchMode=yes -N -- gpu-box"]
    assert sorted(p.name for p in state.iterdir()) == before


def test_outside_a_project_nothing_starts_and_nothing_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    monkeypatch.chdir(bare)
    assert not ahead.connect_for(["pull", "train"])
    ahead.remember(str(bare / ".outlive"), None, "box", ARGV, lambda: None)
    assert list(bare.iterdir()) == []


def test_settle_returns_once_the_master_listens_not_when_the_early_ssh_ends(
    project: Path,
) -> None:
    """What a connection waits for is the master's socket, made by this ssh (a stale one made
    before is not it), even where the early ssh itself has not ended yet."""
    sock = project.parent / "master.sock"
    sock.write_text("stale")
    os.utime(sock, (1.0, 1.0))
    slow = project.parent / "bin" / "ssh"
    slow.write_text(f'#!/bin/sh\nsleep 0.3\nrm -f "{sock}"; : > "{sock}"\nexec sleep 30\n')
    remember(project, socket=str(sock))
    asked: list[str] = []

    def lookup() -> str:
        asked.append("ssh -G")
        return "elsewhere"

    ahead.remember(str(project / ".outlive"), str(project / "outlive.toml"), "box", ARGV, lookup)
    assert marshal.loads((project / ".outlive" / ahead.RECORD_NAME).read_bytes())["targets"]["box"][
        "socket"
    ] == str(sock)
    assert ahead.connect_for(["pull", "train"])
    early = ahead._inflight[0]
    ahead.settle(20.0)
    assert early.proc.poll() is None  # still running its session: not what settle waited for
    assert sock.stat().st_mtime > 2.0  # settled on the socket this ssh made
    assert ahead._inflight == [] and asked == []  # the same record: no second ssh -G
    early.proc.kill()
    early.proc.wait()


def test_settle_gives_up_after_its_timeout(project: Path) -> None:
    (project.parent / "bin" / "ssh").write_text("#!/bin/sh\nexec sleep 30\n")
    remember(project, socket=str(project.parent / "never.sock"))
    assert ahead.connect_for(["pull", "train"])
    early = ahead._inflight[0]
    ahead.settle(0.2)
    assert ahead._inflight == [] and early.proc.poll() is None
    early.proc.kill()
    early.proc.wait()


def test_the_early_ssh_has_its_own_session_and_none_of_this_process_descriptors(
    project: Path,
) -> None:
    """The master the early ssh leaves behind lives on for minutes: it must hold no descriptor
    of the command that started it (an output pipe its caller waits on to end would never
    close), and a Ctrl-C of that command must not reach it (a session of its own)."""
    seen = project.parent / "seen"
    (project.parent / "bin" / "ssh").write_text(
        "#!/bin/sh\n"
        f'ls /proc/$$/fd | cat > "{seen}.fds"\n'  # through a pipe: the shell's own fds
        f'readlink /proc/$$/fd/0 /proc/$$/fd/1 | cat > "{seen}.std"\n'
        f'cut -d" " -f6 /proc/$$/stat > "{seen}.sid"; echo $$ >> "{seen}.sid"\n'
    )
    remember(project)
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        assert ahead.connect_for(["pull", "train"])
        ahead.settle(10.0)
    finally:
        os.close(read_end)
        os.close(write_end)
    fds = {int(x) for x in Path(f"{seen}.fds").read_text().split()}
    assert write_end not in fds and read_end not in fds
    assert Path(f"{seen}.std").read_text().split() == [os.devnull, os.devnull]
    sid, pid = Path(f"{seen}.sid").read_text().split()
    assert sid == pid  # the leader of a session of its own
