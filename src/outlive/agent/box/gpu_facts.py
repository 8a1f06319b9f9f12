"""Raw GPU facts for ``outlive up`` and ``outlive doctor``: nvidia-smi's views, torch's side of
the CUDA triangle, and the processes holding /dev/nvidia*. Facts only; outlive.diagnose judges."""

from __future__ import annotations

import json
import os
import time
from typing import List, Tuple

from .commands import run_cmd
from .common import Rec
from .procfs import proc_stat
from .records import read_text

NVIDIA_SMI_TIMEOUT_S = 10.0  # a wedged driver can hang nvidia-smi for minutes
TORCH_PROBE_TIMEOUT_S = 30.0  # importing torch and creating a CUDA context is slow, not that slow
VRAM_SCAN_BUDGET_S = 5.0  # walking /proc/*/fd on a box with many processes

# Fields of `nvidia-smi --query-gpu`; an unknown field fails the whole query, so these are
# long-standing ones and GPU_QUERY_FIELDS_MIN is the fallback for an old driver.
GPU_QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "clocks.sm",
    "clocks.max.sm",
    "clocks.default_applications.graphics",
    "pstate",
)
GPU_QUERY_FIELDS_MIN = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
)
COMPUTE_APP_FIELDS = ("pid", "process_name", "used_gpu_memory", "gpu_uuid")

_TORCH_PROBE = r"""
import json, warnings
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        import torch
    except Exception as exc:
        out["import_error"] = "%s: %s" % (type(exc).__name__, exc)
    else:
        out["torch"] = str(torch.__version__)
        out["cuda"] = torch.version.cuda
        try:
            out["available"] = bool(torch.cuda.is_available())
            if out["available"]:
                n = torch.cuda.device_count()
                out["device_count"] = n
                out["names"] = [torch.cuda.get_device_name(i) for i in range(n)]
                out["capabilities"] = [list(torch.cuda.get_device_capability(i)) for i in range(n)]
                out["arch_list"] = list(torch.cuda.get_arch_list())
        except Exception as exc:
            out["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    out["warnings"] = [str(w.message)[:500] for w in caught][:5]
print(json.dumps(out))
"""


def gpu_facts(dmon_samples: int = 0) -> Rec:
    """nvidia-smi's views: per-GPU query, compute processes, -q -d PERFORMANCE (clock event /
    throttle reasons), and ``dmon`` samples when asked. Stops after the first call that hangs."""
    out: Rec = {"dev_nodes": sorted(_dev_nvidia())}
    fields: Tuple[str, ...] = GPU_QUERY_FIELDS
    query = run_cmd(_query_argv(fields), NVIDIA_SMI_TIMEOUT_S)
    if query["rc"] not in (0, None) and "valid field" in (query["stdout"] + query["stderr"]):
        fields = GPU_QUERY_FIELDS_MIN  # an older driver that lacks one of the fields
        query = run_cmd(_query_argv(fields), NVIDIA_SMI_TIMEOUT_S)
    out["fields"] = list(fields)
    out["query"] = query
    if query["rc"] != 0:
        return out  # missing, broken or hung: every further call would fail the same way
    out["apps"] = run_cmd(
        [
            "nvidia-smi",
            "--query-compute-apps=" + ",".join(COMPUTE_APP_FIELDS),
            "--format=csv,noheader,nounits",
        ],
        NVIDIA_SMI_TIMEOUT_S,
    )
    out["app_fields"] = list(COMPUTE_APP_FIELDS)
    out["performance"] = run_cmd(["nvidia-smi", "-q", "-d", "PERFORMANCE"], NVIDIA_SMI_TIMEOUT_S)
    if dmon_samples > 0:
        out["dmon"] = run_cmd(
            ["nvidia-smi", "dmon", "-s", "pucv", "-c", str(dmon_samples), "-d", "1"],
            NVIDIA_SMI_TIMEOUT_S + dmon_samples,
        )
    return out


def _query_argv(fields: Tuple[str, ...]) -> List[str]:
    return ["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]


def _dev_nvidia() -> List[str]:
    try:
        return ["/dev/" + n for n in os.listdir("/dev") if n.startswith("nvidia")]
    except OSError:
        return []


def torch_facts(python: str) -> Rec:
    """torch's side of the CUDA triangle (U28): its version, the CUDA it was built for, the
    devices it sees and the architectures it carries kernels for."""
    done = run_cmd([python, "-c", _TORCH_PROBE], TORCH_PROBE_TIMEOUT_S, keep_bytes=64 * 1024)
    out: Rec = {"python": python, "run": {k: v for k, v in done.items() if k != "stdout"}}
    lines = done["stdout"].strip().splitlines()
    if done["rc"] == 0 and lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
        if isinstance(result, dict):
            out["result"] = result
    return out


def nvidia_holders(budget_s: float = VRAM_SCAN_BUDGET_S) -> Rec:
    """Processes with a /dev/nvidia* device open, found through /proc/*/fd (what ``fuser -v
    /dev/nvidia*`` shows), so VRAM that nvidia-smi cannot attribute gets a name (U11).
    A report only: nothing here signals any process."""
    holders = []
    unreadable = 0
    truncated = False
    deadline = time.monotonic() + budget_s
    me = os.getpid()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        return {"error": f"cannot list /proc: {exc.strerror or exc}", "holders": []}
    for pid in pids:
        if time.monotonic() > deadline:
            truncated = True
            break
        if int(pid) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except PermissionError:
            unreadable += 1
            continue
        except OSError:
            continue  # exited meanwhile
        devices = set()
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/nvidia"):
                devices.add(target)
        if not devices:
            continue
        stat = proc_stat(pid) or []
        cmdline = (read_text(f"/proc/{pid}/cmdline") or "").replace("\x00", " ").strip()
        holders.append(
            {
                "pid": int(pid),
                "comm": stat[0] if stat else None,
                "state": stat[1] if len(stat) > 1 else None,
                "ppid": int(stat[2]) if len(stat) > 2 else None,
                "pgid": int(stat[3]) if len(stat) > 3 else None,
                "devices": sorted(devices),
                "cmdline": cmdline[:300],
            }
        )
    return {"holders": holders, "unreadable": unreadable, "truncated": truncated}
