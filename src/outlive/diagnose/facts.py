"""The box agent's ``audit`` and ``doctor`` replies, field by field (``outlive.agent.box``:
``verb_audit``, ``verb_doctor`` and the ``*_facts`` helpers they call).

They arrive as JSON, so they are ``TypedDict``s: the reader and mypy know every field, and the
values stay the plain dicts the agent sent. ``total=False`` throughout: an older agent, a box
without a GPU or a fact that could not be read leaves keys out, and the checks treat a missing
key like a ``None``.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "AuditFacts",
    "CgroupFacts",
    "CmdResult",
    "DiagnosisJson",
    "DmesgFacts",
    "DoctorFacts",
    "ExitRecord",
    "FsFacts",
    "GpuFacts",
    "Holder",
    "HoldersFacts",
    "HostFacts",
    "LaunchRecord",
    "ProbeFacts",
    "ProcThreads",
    "PythonFacts",
    "ThreadsFacts",
    "TorchFacts",
    "TorchProbe",
]


class CmdResult(TypedDict, total=False):
    """One command the agent ran with a deadline (``run_cmd``)."""

    argv: list[str]
    missing: bool  # not on PATH
    rc: int | None  # None: it did not finish (missing, timed out, could not start)
    timed_out: bool
    stdout: str
    stderr: str
    error: str | None


class GpuFacts(TypedDict, total=False):
    """nvidia-smi's views (``gpu_facts``); after a failed query only the first three."""

    dev_nodes: list[str]
    fields: list[str]  # of --query-gpu, in the order of its CSV columns
    query: CmdResult
    apps: CmdResult
    app_fields: list[str]  # of --query-compute-apps
    performance: CmdResult  # -q -d PERFORMANCE
    dmon: CmdResult  # doctor on a running run only


class PythonFacts(TypedDict, total=False):
    executable: str
    version: str
    version_info: list[int]


class HostFacts(TypedDict, total=False):
    hostname: str
    cpu_count: int | None
    affinity_cpus: int | None
    mem_total_bytes: int | None
    boot_id: str | None
    btime: int | None  # boot time, seconds since the epoch
    uptime_s: float | None
    now: float
    pid: int


class FsFacts(TypedDict, total=False):
    """statvfs of the filesystem holding ``path`` (``fs_facts``); ``error`` when unreadable."""

    path: str
    measured_at: str  # the nearest existing ancestor
    exists: bool
    device: int
    error: str
    total_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int
    readonly: bool
    mount_point: str | None
    fstype: str | None
    source: str | None


class CgroupFacts(TypedDict, total=False):
    """The memory and CPU cgroup files, raw (``cgroup_facts``)."""

    memory_dir: str | None
    cpu_dir: str | None
    files: dict[str, str]  # file name -> its stripped text
    oom_kill: int | None
    quota_cores: float | None


class TorchProbe(TypedDict, total=False):
    """What the torch probe printed (``_TORCH_PROBE``)."""

    import_error: str
    torch: str
    cuda: str | None
    available: bool
    device_count: int
    names: list[str]
    capabilities: list[list[int]]  # [major, minor] per device
    arch_list: list[str]
    cuda_error: str
    warnings: list[str]


class TorchFacts(TypedDict, total=False):
    python: str
    run: CmdResult  # without its stdout
    result: TorchProbe  # absent when the probe printed no JSON


class DmesgFacts(TypedDict, total=False):
    readable: bool
    error: str | None
    missing: bool
    timed_out: bool
    dmesg_restrict: str | None
    total_lines: int
    first_line: str | None
    last_line: str | None
    lines: list[str]  # the newest lines about OOM kills and Xid errors
    lines_dropped: int


class Holder(TypedDict, total=False):
    """A process with a /dev/nvidia* device open (``nvidia_holders``)."""

    pid: int
    comm: str | None
    state: str | None
    ppid: int | None
    pgid: int | None
    devices: list[str]
    cmdline: str


class HoldersFacts(TypedDict, total=False):
    holders: list[Holder]
    unreadable: int
    truncated: bool
    error: str


class ProcThreads(TypedDict, total=False):
    pid: int
    comm: str
    threads: int
    running: int  # runnable threads


class ThreadsFacts(TypedDict, total=False):
    """The job's process group (``group_threads``)."""

    procs: list[ProcThreads]
    env: dict[str, str]  # OMP_NUM_THREADS, MKL_NUM_THREADS as the job started with them
    env_readable: bool
    error: str


class DiagnosisJson(TypedDict):
    """Why a run ended badly: the probe's vanished ladder, sharpened by ``doctor``."""

    cause: str | None
    evidence: list[str]
    gotchas: list[str]


class ProbeFacts(TypedDict, total=False):
    """One run as the box's records show it (``probe_one``; ``outlive.wire.RunProbe``)."""

    run_dir: str
    state: str
    run_id: str | None
    name: str | None
    error: str | None
    exit_code: int | None
    pid: int | None
    heartbeat_age_s: float | None
    diagnosis: DiagnosisJson | None


class LaunchRecord(TypedDict, total=False):
    """The fields of a run's ``launch.json`` the checks read."""

    pid: int | None
    pgid: int | None
    memory_cgroup: str | None
    oom_kill_baseline: int | None
    started_at: float | None


class ExitRecord(TypedDict, total=False):
    """The fields of a run's ``exit.json`` the checks read."""

    ended_at: float | None


class AuditFacts(TypedDict, total=False):
    """The ``audit`` verb's reply (``outlive up``)."""

    python: PythonFacts
    host: HostFacts
    env: dict[str, str | None]
    env_overrides: dict[str, str]  # the target's env, where it names one of the same variables
    caches: dict[str, str]
    disks: dict[str, FsFacts]  # workdir, durable, hf_home, pip_cache
    cgroup: CgroupFacts
    tools: dict[str, str | None]  # name -> where it is, None when not installed
    gpu: GpuFacts
    torch: TorchFacts | None
    vram_holders: HoldersFacts | None


class DoctorFacts(TypedDict, total=False):
    """The ``doctor`` verb's reply (``outlive doctor RUN``)."""

    probe: ProbeFacts
    launch: LaunchRecord
    exit: ExitRecord | None
    host: HostFacts
    run_cgroup: CgroupFacts
    job_cgroup: CgroupFacts | None
    dmesg: DmesgFacts | None
    gpu: GpuFacts
    vram_holders: HoldersFacts | None
    disks: dict[str, FsFacts]  # run_dir, and ckpt_dir when the run has one
    threads: ThreadsFacts | None
    log_tail: str | None  # the end of a failed run's log
