"""The box agent's fact collectors (stdlib only, bounded in time, never raising), driven
against real commands and stand-ins for nvidia-smi and dmesg that print the documented
formats."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from diag_facts import FIXTURES

from outlive.agent import box
from outlive.agent.box import audit as box_audit
from outlive.agent.box import commands as box_commands
from outlive.agent.box import gpu_facts as box_gpu_facts
from outlive.agent.box import host_facts as box_host_facts
from outlive.agent.box import procfs as box_procfs
from outlive.diagnose.gpu import read_gpu

FAKE_NVIDIA_SMI = f"""#!{sys.executable}
# Stand-in for nvidia-smi: an old driver that lacks one of the agent's query fields.
import sys
fx = {str(FIXTURES)!r}
args = sys.argv[1:]
q = [a for a in args if a.startswith("--query-gpu=")]
if q and "clocks.default_applications.graphics" in q[0]:
    print('Field "clocks.default_applications.graphics" is not a valid field to query.')
    sys.exit(2)
if q:
    sys.stdout.write(open(fx + "/query_min.csv").read())
elif any(a.startswith("--query-compute-apps=") for a in args):
    sys.stdout.write(open(fx + "/apps_none_old_driver.txt").read())
elif args[:3] == ["-q", "-d", "PERFORMANCE"]:
    sys.stdout.write(open(fx + "/perf_r470_throttle.txt").read())
elif args[:1] == ["dmon"]:
    sys.stdout.write(open(fx + "/dmon_basic_idle.txt").read())
else:
    sys.exit(1)
"""


def _script(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fakebin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ.get('PATH', '')}")
    return d


def test_run_cmd_reports_a_missing_command() -> None:
    out = box_commands.run_cmd(["no-such-command-outlive-test"], 5)
    assert out["missing"] is True and out["rc"] is None
    assert "not installed" in out["error"]


def test_run_cmd_kills_a_command_that_overruns_its_timeout() -> None:
    start = time.monotonic()
    out = box_commands.run_cmd([sys.executable, "-c", "import time; time.sleep(20)"], 0.5)
    assert out["timed_out"] is True and out["rc"] is None
    assert time.monotonic() - start < 10


def test_run_cmd_names_the_last_stderr_line_of_a_failure() -> None:
    out = box_commands.run_cmd([sys.executable, "-c", "import sys; sys.exit('it broke')"], 10)
    assert out["rc"] == 1 and out["error"].endswith("it broke")


def test_fs_facts_measures_a_missing_path_at_its_nearest_ancestor(tmp_path: Path) -> None:
    facts = box_host_facts.fs_facts(str(tmp_path / "not" / "yet"))
    assert facts["exists"] is False and facts["measured_at"] == str(tmp_path)
    assert facts["total_bytes"] > 0 and facts["free_inodes"] >= 0
    assert facts["mount_point"] and facts["fstype"]


def test_mountinfo_escapes_are_decoded() -> None:
    assert box_procfs.unescape_mount("/mnt/with\\040space\\011tab") == "/mnt/with space\ttab"


def test_gpu_facts_fall_back_to_the_minimal_fields_of_an_old_driver(fakebin: Path) -> None:
    _script(fakebin, "nvidia-smi", FAKE_NVIDIA_SMI)
    facts = box_gpu_facts.gpu_facts(dmon_samples=2)
    assert facts["fields"] == list(box_gpu_facts.GPU_QUERY_FIELDS_MIN)
    view = read_gpu(json.loads(json.dumps(facts)))
    assert view.ok, view.error
    assert view.rows[0]["name"] == "Tesla T4"
    assert view.apps == []
    assert view.perf is not None and view.perf.cuda_version == "11.4"
    assert len(view.dmon) == 3 and not view.problems


def test_gpu_facts_stop_after_a_hung_nvidia_smi(
    fakebin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(fakebin, "nvidia-smi", f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    monkeypatch.setattr(box_gpu_facts, "NVIDIA_SMI_TIMEOUT_S", 0.5)
    start = time.monotonic()
    facts = box_gpu_facts.gpu_facts(dmon_samples=5)
    assert facts["query"]["timed_out"] is True
    assert "apps" not in facts and "dmon" not in facts
    assert time.monotonic() - start < 5
    assert read_gpu(facts).state == "hung"


def test_dmesg_facts_report_an_unreadable_kernel_log(fakebin: Path) -> None:
    _script(
        fakebin,
        "dmesg",
        "#!/bin/sh\necho 'dmesg: read kernel buffer failed: Operation not permitted' >&2\nexit 1\n",
    )
    facts = box_host_facts.dmesg_facts()
    assert facts["readable"] is False
    assert "Operation not permitted" in facts["error"]
    assert facts["lines"] == []


def test_dmesg_facts_keep_only_oom_and_xid_lines(fakebin: Path) -> None:
    log = fakebin / "log.txt"
    log.write_text(
        "[    0.000000] Linux version 6.1.0\n"
        + (FIXTURES / "dmesg_xid.txt").read_text()
        + (FIXTURES / "dmesg_oom_memcg.txt").read_text()
    )
    _script(fakebin, "dmesg", f"#!/bin/sh\ncat '{log}'\n")
    facts = box_host_facts.dmesg_facts()
    assert facts["readable"] is True
    assert facts["first_line"].endswith("Linux version 6.1.0")
    assert len(facts["lines"]) == 4 + 4  # the Xid lines (not the bus line) and the OOM lines
    assert all("Linux version" not in line for line in facts["lines"])


def test_torch_probe_reports_an_import_error_or_a_hang(
    fakebin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = "import sys\nexec(sys.argv[2].replace('import torch', 'import no_such_mod_x'))\n"
    _script(fakebin, "notorch", f"#!{sys.executable}\n{stand_in}")
    facts = box_gpu_facts.torch_facts(str(fakebin / "notorch"))
    assert "ModuleNotFoundError" in facts["result"]["import_error"]
    _script(fakebin, "slowpy", "#!/bin/sh\nsleep 30\n")
    monkeypatch.setattr(box_gpu_facts, "TORCH_PROBE_TIMEOUT_S", 0.5)
    hung = box_gpu_facts.torch_facts(str(fakebin / "slowpy"))
    assert "result" not in hung and hung["run"]["timed_out"] is True


def test_group_threads_counts_the_threads_of_a_process_group() -> None:
    code = (
        "import threading, time\n"
        "for _ in range(4):\n"
        "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "print('up', flush=True)\n"
        "time.sleep(30)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="3")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"
        facts = box_host_facts.group_threads(proc.pid)
        (mine,) = [p for p in facts["procs"] if p["pid"] == proc.pid]
        assert mine["threads"] >= 5
        assert facts["env"] == {"OMP_NUM_THREADS": "3"}
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert box_host_facts.group_threads(None)["procs"] == []


def test_nvidia_holders_scan_never_kills_and_returns_a_report() -> None:
    report = box_gpu_facts.nvidia_holders(budget_s=5)
    assert isinstance(report["holders"], list) and isinstance(report["unreadable"], int)


def test_audit_verb_end_to_end_through_the_protocol(tmp_path: Path) -> None:
    request = {
        "paths": {"workdir": str(tmp_path), "durable": str(tmp_path / "durable")},
        "env": {"HF_HOME": str(tmp_path / "hf")},
        "torch": False,
    }
    done = subprocess.run(
        [sys.executable, str(Path(box.__file__).parent), "audit"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    reply = json.loads(done.stdout)
    assert reply["ok"] is True, reply
    facts = reply["result"]
    assert set(facts["disks"]) == {"workdir", "durable", "hf_home", "pip_cache"}
    assert facts["caches"]["hf_home"] == str(tmp_path / "hf")
    assert facts["env_overrides"] == {"HF_HOME": str(tmp_path / "hf")}
    assert facts["torch"] is None
    assert facts["python"]["version_info"][:2] == list(sys.version_info[:2])


def test_doctor_verb_on_a_missing_run_dir_does_not_raise(tmp_path: Path) -> None:
    facts = box_audit.verb_doctor({"run_dir": str(tmp_path / "gone"), "dmon_samples": 0})
    assert facts["probe"]["state"] == "unknown"
    assert facts["threads"] is None
