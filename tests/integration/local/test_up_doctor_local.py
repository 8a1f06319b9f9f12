"""`outlive up local` and `outlive doctor RUN` on this machine, through the real CLI: no GPU here
(the GPU check says so), real tmpfs mounts that are nearly full or out of inodes (U7), a run
killed with SIGKILL (cause ``killed``, with what could not be checked), a real OOM kill in a
small memory cgroup read back from the kernel log, and runnable work far beyond a CPU quota
(U40)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from local_helpers import OUTLIVE, Project, read_json_file, wait_for

from outlive.gotchas import by_id

UP_CHECKS = [
    "python",
    "gpu",
    "vram",
    "gpu throttle",
    "gpu clocks",
    "cuda triangle",
    "disk workdir",
    "inodes workdir",
    "disk durable",
    "inodes durable",
    "caches",
    "memory",
    "cpu quota",
    "tmux",
    "rsync",
]

HOG_JOB = """\
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
chunks = []
for _ in range(128):
    chunks.append(bytearray(b"x" * (8 << 20)))
print("allocated 1 GiB without being killed", flush=True)
"""

SPIN_JOB = """\
import os, sys, time
# Busy processes in the job's process group: each stays runnable (R), as native thread pools
# sized to the host's cores do (U40); Python threads would mostly wait on the GIL instead.
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        while True:
            pass
print("spinning", flush=True)
while True:
    time.sleep(1)
"""


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """stdout must hold exactly one JSON document."""
    doc = json.loads(done.stdout)
    assert isinstance(doc, dict)
    return doc


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def _up(project: Project) -> tuple[int, dict[str, Any]]:
    done = project.cli("up", "local", "--json", rc=None, timeout_s=200)
    report = _json(done)
    has_fail = any(c["status"] == "FAIL" for c in report["checks"])
    assert done.returncode == (1 if has_fail else 0), done.stderr
    assert report["ok"] is not has_fail
    return done.returncode, report


def _kernel_log_readable() -> bool:
    if shutil.which("dmesg") is None:
        return False
    done = subprocess.run(["dmesg"], capture_output=True, timeout=10, check=False)
    return done.returncode == 0 and bool(done.stdout.strip())


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``small_fs(name, options)``: a real tmpfs mounted for the test, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], check=True)
        mounted.append(d)
        return d

    yield mount
    for d in reversed(mounted):
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill_inodes(directory: Path) -> int:
    """Create empty files until the filesystem refuses a new one; returns how many."""
    n = 0
    while True:
        try:
            (directory / f"f{n}").touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return n
        n += 1


# ---------------------------------------------------------------------------------------------
# up


def test_up_local_json_is_one_document_and_says_when_there_is_no_gpu(project: Project) -> None:
    _, report = _up(project)
    assert report["target"] == "local"
    assert [c["name"] for c in report["checks"]] == UP_CHECKS
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "gotchas"}
        assert check["status"] in ("PASS", "WARN", "FAIL", "SKIP") and check["detail"]
    checks = _checks(report)
    if shutil.which("nvidia-smi") is None:
        assert checks["gpu"]["status"] in ("WARN", "SKIP")
        assert "nvidia-smi is not installed" in checks["gpu"]["detail"]
        for name in ("vram", "gpu throttle", "gpu clocks"):
            assert checks[name]["status"] == "SKIP"
    assert checks["python"]["status"] == "PASS"
    assert str(project.dir) in checks["disk workdir"]["detail"]
    assert "U7" in checks["inodes workdir"]["gotchas"]
    assert set(checks["cuda triangle"]["gotchas"]) == {"U28", "RP9", "PS11"}


def test_up_human_output_is_a_table(project: Project) -> None:
    done = project.cli("up", "local", "--no-torch", rc=None, timeout_s=200)
    assert done.returncode in (0, 1), done.stderr
    for name in ("cuda triangle", "inodes durable", "cpu quota"):
        assert name in done.stdout


def test_up_fails_on_a_nearly_full_durable_disk(
    make_project: Callable[..., Project], small_fs: Callable[[str, str], Path]
) -> None:
    mount = small_fs("small", "size=2m,nr_inodes=50")
    (mount / "big.bin").write_bytes(b"\0" * (3 << 19))  # 1.5 MiB of the 2 MiB
    project = make_project(toml=f'[targets.local]\ndurable = "{mount}"\n')
    rc, report = _up(project)
    assert rc == 1 and report["ok"] is False
    checks = _checks(report)
    disk = checks["disk durable"]
    assert disk["status"] == "FAIL" and disk["gotchas"] == ["U7"]
    assert str(mount) in disk["detail"] and "tmpfs" in disk["detail"]
    # 50 inodes in all: far below what a per-sample evaluation dump needs (U7).
    assert checks["inodes durable"]["status"] == "WARN"
    assert "tmpfs" not in checks["disk workdir"]["detail"]


def test_up_fails_when_inodes_run_out_while_bytes_are_free(
    make_project: Callable[..., Project], small_fs: Callable[[str, str], Path]
) -> None:
    mount = small_fs("inodes", "size=20g,nr_inodes=50")
    assert _fill_inodes(mount) > 0
    project = make_project(toml=f'[targets.local]\ndurable = "{mount}/ckpt"\n')
    rc, report = _up(project)
    assert rc == 1
    checks = _checks(report)
    assert checks["disk durable"]["status"] == "PASS"  # df -h looks fine ...
    inodes = checks["inodes durable"]  # ... df -i does not (U7)
    assert inodes["status"] == "FAIL" and "U7" in inodes["gotchas"]
    assert "0 of 50 inodes free" in inodes["detail"]
    assert "not created yet" in inodes["detail"]


# ---------------------------------------------------------------------------------------------
# doctor


def _vanish(project: Project, name: str) -> str:
    """A running job whose supervisor and job are both SIGKILLed: no exit record is written."""
    run_id, _ = project.start_waiting(name)
    st = project.wait_running(run_id)
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    os.killpg(st["pid"], signal.SIGKILL)
    st = project.wait(run_id, lambda s: s["state"] != "running", "the run to stop running")
    assert st["state"] == "vanished"
    return run_id


def test_doctor_on_a_killed_run_says_killed_and_what_it_could_not_check(project: Project) -> None:
    run_id = _vanish(project, "killed")
    done = project.cli("doctor", run_id, "--json", rc=1, timeout_s=200)
    assert done.returncode == 1  # it shows a FAIL (the run), so the check failed, as `up` does
    report = _json(done)
    assert set(report) == {
        "run_id",
        "state",
        "verdict",
        "diagnosis",
        "log_matches",
        "checks",
        "could_not_check",
    }
    assert report["run_id"] == run_id and report["state"] == "vanished"
    # the log was read (nothing in it matched), so the verdict rests on the exit evidence
    assert report["log_matches"] == []
    assert report["verdict"]["status"] == "FAIL" and report["verdict"]["cause"] == "killed"
    assert report["verdict"]["sources"] == ["exit"]
    diag = report["diagnosis"]
    assert diag["cause"] == "killed" and "U3" in diag["gotchas"]
    assert any("no exit record" in e for e in diag["evidence"])
    checks = _checks(report)
    assert checks["run"]["status"] == "FAIL" and "killed" in checks["run"]["detail"]
    assert checks["disk workdir"]["status"] in ("PASS", "WARN", "FAIL")
    unchecked = " | ".join(report["could_not_check"])
    assert "who sent the kill" in unchecked
    if shutil.which("nvidia-smi") is None:
        assert "nvidia-smi is not installed" in unchecked
    if _kernel_log_readable():
        # WARN when other tests' OOM kills on this machine fall inside the run's window.
        assert checks["oom (kernel log)"]["status"] in ("PASS", "WARN")
        assert any("kernel log: no OOM kill of the job" in e for e in diag["evidence"])
    else:
        assert "kernel log (dmesg)" in unchecked


def test_doctor_lists_an_unreadable_kernel_log_instead_of_guessing(project: Project) -> None:
    run_id = _vanish(project, "no-dmesg")
    project.env["PATH"] = str(Path(OUTLIVE).parent)  # no dmesg, no nvidia-smi
    report = _json(project.cli("doctor", run_id, "--json", rc=1, timeout_s=200))
    assert report["diagnosis"]["cause"] == "killed"
    checks = _checks(report)
    assert checks["oom (kernel log)"]["status"] == "SKIP"
    assert checks["xid"]["status"] == "SKIP"
    unchecked = report["could_not_check"]
    assert any(c.startswith("kernel log (dmesg): dmesg is not installed") for c in unchecked)
    assert any("cannot be ruled out" in c for c in unchecked)


def test_doctor_human_output(project: Project) -> None:
    run_id = _vanish(project, "human")
    done = project.cli("doctor", run_id, rc=1, timeout_s=200)
    assert f"run {run_id}: vanished, cause killed" in done.stdout
    assert "verdict: FAIL: killed (U3)" in done.stdout  # the ranked verdict, with its fix
    assert f"fix: {by_id('U3').fix}" in done.stdout
    assert "could not check:" in done.stdout


@pytest.mark.root
def test_doctor_reads_a_real_oom_kill_back_from_the_kernel_log(
    project: Project, memory_cgroup: Any
) -> None:
    memory_cgroup.limit_memory(128 << 20)
    project.write("hog.py", HOG_JOB)
    go = project.dir / "go"
    argv = memory_cgroup.wrap(
        [OUTLIVE, "run", "--json", "--name", "hog", "--", sys.executable, "hog.py", str(go)]
    )
    done = subprocess.run(
        argv, cwd=project.dir, env=project.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    run_id = str(json.loads(done.stdout)["run_id"])
    launch = read_json_file(project.dir / ".outlive" / "runs" / run_id / "launch.json")
    go.touch()
    assert project.wait_ended(run_id)["state"] == "failed"

    report = _json(project.cli("doctor", run_id, "--json", rc=None, timeout_s=200))
    assert report["diagnosis"]["cause"] == "oom"
    checks = _checks(report)
    assert checks["memory"]["status"] == "FAIL" and "grew" in checks["memory"]["detail"]
    if _kernel_log_readable():
        kernel = checks["oom (kernel log)"]
        assert kernel["status"] == "FAIL", kernel
        assert f"Killed process {launch['pid']} " in kernel["detail"]
        assert any(e.startswith("kernel log: ") for e in report["diagnosis"]["evidence"])
    else:
        assert any("kernel log (dmesg)" in c for c in report["could_not_check"])


@pytest.mark.root
def test_doctor_flags_a_thread_storm_under_a_cpu_quota(project: Project, cpu_cgroup: Any) -> None:
    cpu_cgroup.limit_cpu(50_000, 100_000)  # half a core
    project.write("spin.py", SPIN_JOB)
    argv = cpu_cgroup.wrap(
        [OUTLIVE, "run", "--json", "--name", "spin", "--", sys.executable, "spin.py", "6"]
    )
    done = subprocess.run(
        argv, cwd=project.dir, env=project.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    run_id = str(json.loads(done.stdout)["run_id"])
    try:
        project.wait_running(run_id)
        log = project.dir / ".outlive" / "runs" / run_id / "stdout.log"
        wait_for(lambda: "spinning" in log.read_text(), "the job's threads to start")
        report = _json(project.cli("doctor", run_id, "--json", rc=None, timeout_s=200))
        threads = _checks(report)["threads"]
        assert threads["status"] == "WARN", threads
        assert "U40" in threads["gotchas"] and "0.5 vCPUs" in threads["detail"]
    finally:
        with contextlib.suppress(Exception):
            project.cli("cancel", run_id, rc=None)
