"""``audit`` and ``doctor``: raw facts about the box for ``outlive up`` and ``outlive doctor``.

Everything here collects facts and judges nothing (the client's outlive.diagnose does that).
Every external command runs with a timeout and nothing here raises, so one broken tool never
hides the other facts.
"""

from __future__ import annotations

import os
import sys
import time

from outlive import wire

from .common import Rec
from .gpu_facts import gpu_facts, nvidia_holders, torch_facts
from .host_facts import cgroup_facts, cgroup_files, dmesg_facts, fs_facts, group_threads, host_facts
from .procfs import boot_id, is_alive
from .records import read_json
from .runs import probe_one

DMON_SAMPLES = 5  # seconds of `nvidia-smi dmon`: one snapshot of utilisation lies (U21)
ENV_FACTS = (
    "HOME",
    "HF_HOME",
    "HF_HUB_CACHE",
    "PIP_CACHE_DIR",
    "XDG_CACHE_HOME",
    "TMPDIR",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
)


def _cache_paths(overrides: Rec) -> Rec:
    """Where the Hugging Face and pip caches of a job would land (RP11): the target's env first,
    then this box's environment, then the tools' defaults under ~/.cache."""

    def env(key: str) -> str | None:
        value = overrides.get(key)
        return str(value) if value else os.environ.get(key) or None

    cache_home = env("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    hf = env("HF_HOME") or os.path.join(cache_home, "huggingface")
    pip = env("PIP_CACHE_DIR") or os.path.join(cache_home, "pip")
    return {"hf_home": os.path.expanduser(hf), "pip_cache": os.path.expanduser(pip)}


def verb_audit(req: Rec) -> Rec:
    """Phase-0 facts (``outlive up``): python, GPU and torch, disks and inodes of the workdir,
    durable and cache paths, cgroup memory and CPU quota, tools present."""
    import platform
    import shutil  # only here: the probe path never needs it

    overrides = req.get("env") or {}
    caches = _cache_paths(overrides if isinstance(overrides, dict) else {})
    paths = {str(k): str(v) for k, v in (req.get("paths") or {}).items()}
    paths.update(caches)
    gpu = gpu_facts()
    has_gpu = gpu["query"]["rc"] == 0 or bool(gpu["dev_nodes"])
    python = str(req.get("python") or sys.executable)
    return {
        "python": {
            "executable": sys.executable,
            "version": platform.python_version(),
            "version_info": list(sys.version_info[:3]),
        },
        "host": host_facts(),
        "env": {k: os.environ.get(k) for k in ENV_FACTS},
        "env_overrides": {k: str(v) for k, v in overrides.items() if k in ENV_FACTS},
        "caches": caches,
        "disks": {role: fs_facts(p) for role, p in paths.items()},
        "cgroup": cgroup_facts(),
        "tools": {name: shutil.which(name) for name in ("tmux", "rsync", "nvidia-smi", "dmesg")},
        "gpu": gpu,
        "torch": torch_facts(python) if req.get("torch", True) else None,
        "vram_holders": nvidia_holders() if has_gpu else None,
    }


def verb_doctor(req: Rec) -> Rec:
    """Facts for ``outlive doctor RUN``: the probe (state and vanished ladder), the kernel log,
    the GPU, VRAM holders, disks of the run and checkpoint dirs, threads vs the CPU quota."""
    run_dir = os.path.expanduser(str(req["run_dir"]))
    now = time.time()
    probe = probe_one(run_dir, boot_id(), now)
    spec = read_json(os.path.join(run_dir, wire.RUN_JSON))
    launch = read_json(os.path.join(run_dir, wire.LAUNCH_JSON))
    exit_rec = read_json(os.path.join(run_dir, wire.EXIT_JSON))
    launch = launch if isinstance(launch, dict) else {}
    running = probe.get("state") == "running"
    job_alive = running and is_alive(launch.get("pid"), launch.get("start_ticks"))
    job_pid = launch.get("pid") if job_alive else None
    ckpt_dir = spec.get("ckpt_dir") if isinstance(spec, dict) else None
    gpu = gpu_facts(int(req.get("dmon_samples", DMON_SAMPLES)) if running else 0)
    has_gpu = gpu["query"]["rc"] == 0 or bool(gpu["dev_nodes"])
    disks = {"run_dir": fs_facts(run_dir)}
    if ckpt_dir:
        disks["ckpt_dir"] = fs_facts(str(ckpt_dir))
    return {
        "probe": probe,
        "launch": launch,
        "exit": exit_rec if isinstance(exit_rec, dict) else None,
        "host": host_facts(),
        "run_cgroup": cgroup_files(launch.get("memory_cgroup"), None),
        "job_cgroup": cgroup_facts(job_pid) if job_pid else None,
        "dmesg": dmesg_facts() if req.get("dmesg", True) else None,
        "gpu": gpu,
        "vram_holders": nvidia_holders() if has_gpu else None,
        "disks": disks,
        "threads": group_threads(launch.get("pgid")) if job_pid else None,
        "log_tail": _log_tail(run_dir) if probe.get("state") == "failed" else None,
    }


LOG_TAIL_BYTES = 64 << 10  # enough for a traceback; doctor matches it against the catalog


def _log_tail(run_dir: str) -> str | None:
    """The end of a failed run's log (why it failed is usually in its last lines)."""
    try:
        with open(os.path.join(run_dir, wire.STDOUT_LOG), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
