"""The TypedDicts of ``outlive.diagnose.facts`` name every key the box agent sends: a fact the
agent adds or renames fails here instead of reading as a silent None in a check."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from outlive._shapes import fields_of
from outlive.agent.box import audit, gpu_facts, host_facts
from outlive.diagnose import facts as F
from outlive.wire import RunProbe


def _keys(shape: Any) -> set[str]:
    return set(shape.__required_keys__) | set(shape.__optional_keys__)


def _within(doc: dict[str, Any], shape: Any) -> None:
    assert set(doc) <= _keys(shape), f"{shape.__name__} lacks {set(doc) - _keys(shape)}"


def test_the_audit_reply_has_exactly_the_typed_keys(tmp_path: Path) -> None:
    paths = {"workdir": str(tmp_path), "durable": str(tmp_path / "not-yet")}
    reply = audit.verb_audit({"paths": paths, "env": {"HF_HOME": "/x"}, "torch": False})
    assert set(reply) == _keys(F.AuditFacts)
    _within(reply["python"], F.PythonFacts)
    _within(reply["host"], F.HostFacts)
    _within(reply["cgroup"], F.CgroupFacts)
    _within(reply["gpu"], F.GpuFacts)
    _within(reply["gpu"]["query"], F.CmdResult)
    assert set(reply["disks"]) == {"workdir", "durable", "hf_home", "pip_cache"}
    for fs in reply["disks"].values():
        _within(fs, F.FsFacts)


def test_the_doctor_reply_has_exactly_the_typed_keys(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r1", "name": "n"}))
    reply = audit.verb_doctor({"run_dir": str(tmp_path), "dmesg": True})
    assert set(reply) == _keys(F.DoctorFacts)
    # ProbeFacts names the fields of a probe (outlive.wire.RunProbe) that the checks read.
    probe_fields = set(fields_of(RunProbe("", "")))
    assert _keys(F.ProbeFacts) <= probe_fields
    assert set(reply["probe"]) <= probe_fields
    _within(reply["dmesg"], F.DmesgFacts)
    _within(reply["run_cgroup"], F.CgroupFacts)


def test_the_collectors_send_only_typed_keys() -> None:
    holders = gpu_facts.nvidia_holders(budget_s=1.0)
    _within(holders, F.HoldersFacts)
    for h in holders["holders"]:
        _within(h, F.Holder)
    threads = host_facts.group_threads(os.getpgid(0))
    _within(threads, F.ThreadsFacts)
    assert threads["procs"]
    for p in threads["procs"]:
        _within(p, F.ProcThreads)
    _within(host_facts.group_threads(None), F.ThreadsFacts)


FAKE_TORCH = """
import types
__version__ = "2.4.0"
version = types.SimpleNamespace(cuda="12.4")
cuda = types.SimpleNamespace(
    is_available=lambda: True,
    device_count=lambda: 1,
    get_device_name=lambda i: "NVIDIA H100",
    get_device_capability=lambda i: (9, 0),
    get_arch_list=lambda: ["sm_80", "sm_90"],
)
"""


def test_the_torch_probe_sends_only_typed_keys(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "torch.py").write_text(FAKE_TORCH)  # every field, without importing torch
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    torch = gpu_facts.torch_facts(sys.executable)
    assert torch["result"]["names"] == ["NVIDIA H100"]
    _within(torch, F.TorchFacts)
    _within(torch["run"], F.CmdResult)
    _within(torch["result"], F.TorchProbe)
