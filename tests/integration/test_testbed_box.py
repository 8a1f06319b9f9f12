"""The throwaway SSH box (outlive.testing) behaves like a rented machine: own address, own boot id,
detached jobs that outlive the session, a link that can be cut, a reboot that kills every job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from outlive.errors import ConfigError
from outlive.testing import Box, TestbedUnavailable, check_prerequisites, wait_until
from outlive.testing.box import CONNECT_TIMEOUT_S

TARGET_KEYS = {"profile", "host", "ssh_config", "workdir", "durable"}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outlive.testing", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _json_doc(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The one JSON document a --json command printed; fail with its stderr otherwise."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    doc: dict[str, object] = json.loads(lines[0])
    return doc


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _launch_sleep(box: Box, seconds: int) -> int:
    """Start a detached ``sleep SECONDS`` on the box the way a user would; its host pid."""
    proc = box.ssh(f"setsid nohup sleep {seconds} >/dev/null 2>&1 </dev/null &")
    assert proc.returncode == 0, proc.stderr

    def pids() -> list[int]:
        return [pid for pid, cmd in box.procs().items() if cmd == f"sleep {seconds}"]

    return wait_until(pids, f"sleep {seconds} to show up on the box")[0]


def _sshd_pids(box: Box) -> set[int]:
    """The box's sshd processes (the listener and one or more per open connection)."""
    return {pid for pid, cmd in box.procs().items() if cmd.startswith("sshd")}


def test_box_reports_its_own_boot_id_hostname_and_home(box: Box) -> None:
    proc = box.ssh("cat /proc/sys/kernel/random/boot_id; hostname; echo ~")
    assert proc.returncode == 0, proc.stderr
    boot_id, hostname, home = proc.stdout.split()
    assert boot_id == box.boot_id()
    assert boot_id != Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert hostname == box.name
    assert home == str(box.home)


def test_target_holds_exactly_the_outlive_toml_keys_and_reaches_the_box(box: Box) -> None:
    target = box.target
    assert set(target) == TARGET_KEYS
    assert target["profile"] == "generic-ssh"
    assert target["host"] == box.name
    assert Path(target["ssh_config"]).is_absolute()
    assert Path(target["ssh_config"]) == box.ssh_config
    proc = subprocess.run(
        ["ssh", "-F", target["ssh_config"], target["host"], "test -d", target["workdir"],
         "&& test -d", target["durable"]],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_host_key_is_preseeded_so_strict_checking_passes(box: Box) -> None:
    proc = box.ssh("-o", "StrictHostKeyChecking=yes", "true")
    assert proc.returncode == 0, proc.stderr


def test_detached_job_outlives_the_ssh_session(box: Box) -> None:
    before = _sshd_pids(box)  # other tests' connections may stay open: only ours must end
    pid = _launch_sleep(box, 1000)
    wait_until(lambda: _sshd_pids(box) <= before, "the launching ssh session to end on the box")
    assert _alive(pid)


def test_cut_fails_ssh_but_jobs_keep_running_until_restore(box: Box) -> None:
    pid = _launch_sleep(box, 1001)
    box.cut()
    assert box.is_cut()
    # fails (ConnectTimeout in the box's ssh config), not hangs: box.ssh's own timeout is longer
    proc = box.ssh("true", timeout_s=10 * CONNECT_TIMEOUT_S)
    assert proc.returncode == 255, proc.stderr
    assert _alive(pid), "a job on the box died when only its link was cut"
    box.restore()
    assert box.ssh("true").returncode == 0
    assert _alive(pid)


def test_reboot_kills_jobs_changes_boot_id_and_keeps_files(box: Box) -> None:
    pid = _launch_sleep(box, 1002)
    marker = box.workdir / "survives-reboot.txt"
    assert box.ssh(f"echo kept > {marker}").returncode == 0
    before = box.boot_id()

    after = box.reboot()

    assert after != before
    assert not _alive(pid)
    assert not [cmd for cmd in box.procs().values() if cmd.startswith("sleep ")]
    proc = box.ssh(f"cat /proc/sys/kernel/random/boot_id {marker}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [after, "kept"]


def test_cli_up_on_a_running_box_prints_the_contract_and_leaves_it_alone(box: Box) -> None:
    pid = _launch_sleep(box, 1003)
    boot_id = box.boot_id()
    doc = _json_doc(_cli("box", "up", "--name", box.name, "--json"))
    assert doc == {"name": box.name, "target": box.target}
    assert box.boot_id() == boot_id
    assert _alive(pid)


def test_cli_drives_a_second_box_and_down_leaves_nothing(box: Box) -> None:
    name = f"tc{os.getpid()}"
    try:
        doc = _json_doc(_cli("box", "up", "--name", name, "--json"))
        assert set(doc) == {"name", "target"}
        target = doc["target"]
        assert isinstance(target, dict)
        assert set(target) == TARGET_KEYS
        other = Box(name)
        assert other.address != box.address
        assert other.ssh("true").returncode == 0

        assert _json_doc(_cli("box", "cut", "--name", name, "--json")) == {"name": name, "ok": True}
        assert other.is_cut()
        assert _json_doc(_cli("box", "restore", "--name", name, "--json")) == {
            "name": name,
            "ok": True,
        }
        assert other.ssh("true").returncode == 0

        before = other.boot_id()
        doc = _json_doc(_cli("box", "reboot", "--name", name, "--json"))
        assert doc == {
            "name": name,
            "ok": True,
            "boot_id": doc["boot_id"],
            "previous_boot_id": before,
        }
        assert doc["boot_id"] != before
        proc = other.ssh("cat /proc/sys/kernel/random/boot_id")
        assert proc.stdout.strip() == doc["boot_id"]

        box_pids = list(other.procs())
        veth = json.loads((other.state_dir / "state.json").read_text())["veth_host"]
        assert box_pids
        assert _json_doc(_cli("box", "down", "--name", name, "--json")) == {
            "name": name,
            "ok": True,
            "existed": True,
        }
        assert (
            other.netns
            not in subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True, check=True
            ).stdout
        )
        assert subprocess.run(["ip", "link", "show", veth], capture_output=True).returncode != 0
        assert not other.state_dir.exists()
        assert not [pid for pid in box_pids if _alive(pid)]
        assert _json_doc(_cli("box", "down", "--name", name, "--json")) == {
            "name": name,
            "ok": True,
            "existed": False,
        }
    finally:
        Box(name).down()
    # The session's own box was untouched throughout.
    assert box.ssh("true").returncode == 0


def test_cli_verbs_on_a_box_that_is_not_up_fail_with_one_sentence() -> None:
    try:
        check_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    name = f"none{os.getpid()}"
    proc = _cli("box", "reboot", "--name", name, "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False
    assert f"No testbed box named {name} is up" in proc.stderr


def test_missing_tools_or_root_are_named() -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    proc = _cli("box", "up", "--name", f"nt{os.getpid()}", "--json", env=env)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False
    if os.geteuid() == 0:
        assert "needs ip," in proc.stderr
        assert "apt-get install" in proc.stderr
    else:
        assert "needs root" in proc.stderr


@pytest.mark.parametrize("name", ["", "a b", "x;y", "$(id)", "-n", "a" * 33, "ü"])
def test_hostile_box_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        Box(name)
    proc = _cli("box", "down", "--name", name, "--json")
    assert proc.returncode == 2


def test_public_surface_is_what_we_mean_to_export() -> None:
    import outlive.testing

    assert set(outlive.testing.__all__) == {
        "DEADLINE_S",
        "DEFAULT_NAME",
        "Box",
        "K8sCluster",
        "TestbedError",
        "TestbedUnavailable",
        "check_prerequisites",
        "testbed_root",
        "wait_until",
    }
