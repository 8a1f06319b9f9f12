"""GPU checks from nvidia-smi facts: presence, VRAM nobody owns (U11), throttling and clocks
(U23), and utilisation that is not work (U21). The CUDA triangle lives in ``cuda``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from outlive.diagnose.facts import GpuFacts, Holder, HoldersFacts
from outlive.diagnose.model import MIB, Check, Status, human_bytes
from outlive.diagnose.nvsmi import (
    NvsmiParseError,
    Performance,
    Value,
    parse_compute_apps,
    parse_dmon,
    parse_performance,
    parse_query_csv,
)

__all__ = [
    "GPU_BUSY_SM_PCT",
    "GPU_HOT_C",
    "GPU_IDLE_SM_PCT",
    "GPU_UNDERFED_POWER_FRACTION",
    "VRAM_UNATTRIBUTED_WARN_MIB",
    "GpuView",
    "clocks_check",
    "feed_check",
    "presence_check",
    "read_gpu",
    "throttle_check",
    "vram_check",
]

# Temperature (°C) at which a datacenter GPU starts to cut its clocks; an H100 near 83 °C (U23).
GPU_HOT_C = 83.0
# Mean SM utilisation (%) over the dmon samples that counts as "busy".
GPU_BUSY_SM_PCT = 80.0
# Busy, but drawing less than this fraction of its power limit: the GPU is underfed (U21).
GPU_UNDERFED_POWER_FRACTION = 0.40
# Mean SM utilisation (%) below which a running job is not using the GPU (U40, U24).
GPU_IDLE_SM_PCT = 10.0
# VRAM in use (MiB) with no process to account for it before it counts as held by a ghost (U11).
VRAM_UNATTRIBUTED_WARN_MIB = 1024.0

# Daemons that keep /dev/nvidia* open on a healthy box; never candidates for reaping.
SYSTEM_GPU_CLIENTS = frozenset(
    {"nvidia-persistenced", "nv-hostengine", "nvidia-smi", "dcgm", "Xorg", "Xwayland"}
)
# Clock event reasons that mean cooling or power outside the tenant's control cut the clocks.
HARD_THROTTLE = ("HW Slowdown", "HW Thermal Slowdown", "HW Power Brake Slowdown")
THERMAL_THROTTLE = ("SW Thermal Slowdown",)


@dataclass
class GpuView:
    """nvidia-smi's facts, parsed once. ``state``: ok | missing | failed | hung."""

    state: str
    error: str | None = None
    rows: list[dict[str, Value]] = field(default_factory=list)
    apps: list[dict[str, Value]] = field(default_factory=list)
    perf: Performance | None = None
    dmon: list[dict[str, float | None]] = field(default_factory=list)
    dev_nodes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts that could not be read

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def read_gpu(facts: GpuFacts | None) -> GpuView:
    if not facts:
        return GpuView("missing", "no GPU facts came back")
    query = facts.get("query") or {}
    view = GpuView("ok", dev_nodes=list(facts.get("dev_nodes") or []))
    if query.get("missing"):
        view.state, view.error = "missing", "nvidia-smi is not installed"
        return view
    if query.get("timed_out"):
        view.state, view.error = "hung", query.get("error")
        return view
    if query.get("rc") != 0:
        view.state, view.error = "failed", query.get("error") or "nvidia-smi failed"
        return view
    try:
        view.rows = parse_query_csv(query.get("stdout", ""), facts.get("fields") or [])
    except NvsmiParseError as exc:
        view.state, view.error = "failed", str(exc)
        return view
    apps = facts.get("apps") or {}
    if apps.get("rc") == 0:
        try:
            view.apps = parse_compute_apps(apps.get("stdout", ""), facts.get("app_fields") or [])
        except NvsmiParseError as exc:
            view.problems.append(f"nvidia-smi --query-compute-apps: {exc}")
    elif apps:
        view.problems.append(f"nvidia-smi --query-compute-apps: {apps.get('error')}")
    perf = facts.get("performance") or {}
    if perf.get("rc") == 0:
        try:
            view.perf = parse_performance(perf.get("stdout", ""))
        except NvsmiParseError as exc:
            view.problems.append(f"nvidia-smi -q -d PERFORMANCE: {exc}")
    elif perf:
        view.problems.append(f"nvidia-smi -q -d PERFORMANCE: {perf.get('error')}")
    dmon = facts.get("dmon") or {}
    if dmon and (dmon.get("rc") == 0 or dmon.get("timed_out")):
        try:
            view.dmon = parse_dmon(dmon.get("stdout", ""))
        except NvsmiParseError as exc:
            view.problems.append(f"nvidia-smi dmon: {exc}")
    elif dmon:
        view.problems.append(f"nvidia-smi dmon: {dmon.get('error')}")
    return view


def _num(value: Value) -> float | None:
    return value if isinstance(value, float) else None


def _gpu_name(row: dict[str, Value]) -> str:
    index = _num(row.get("index"))
    return f"GPU {int(index) if index is not None else '?'} ({row.get('name') or 'unknown'})"


def presence_check(view: GpuView) -> Check:
    """``gpu``: can nvidia-smi see a GPU, which driver, how much memory is free."""
    if view.state == "missing":
        where = f" although {', '.join(view.dev_nodes[:3])} exist" if view.dev_nodes else ""
        return Check(
            "gpu",
            Status.WARN,
            f"no NVIDIA GPU visible: nvidia-smi is not installed{where} — fine for a CPU "
            "smoke run; on a GPU rental suspect a restart that came back without its GPU",
            ("RP1",),
        )
    if view.state == "hung":
        return Check(
            "gpu",
            Status.FAIL,
            f"{view.error}: the driver is wedged; stop and rent another box",
            ("U22",),
        )
    if view.state == "failed":
        text = view.error or "nvidia-smi failed"
        gotchas = ("RP1",) if "no devices" in text.lower() else ("RP9", "U28")
        return Check("gpu", Status.FAIL, f"nvidia-smi cannot read the GPUs: {text}", gotchas)
    if not view.rows:
        return Check("gpu", Status.FAIL, "nvidia-smi lists no GPU", ("RP1",))
    parts = []
    for row in view.rows:
        free, total = _num(row.get("memory.free")), _num(row.get("memory.total"))
        mem = (
            f"{human_bytes(free * MIB)} free of {human_bytes(total * MIB)}"
            if free is not None and total is not None
            else "memory unknown"
        )
        parts.append(f"{_gpu_name(row)}: {mem}")
    driver = view.rows[0].get("driver_version") or "?"
    cuda = view.perf.cuda_version if view.perf else None
    head = f"{len(view.rows)} GPU(s), driver {driver}" + (f" (CUDA {cuda})" if cuda else "")
    return Check("gpu", Status.PASS, head + "; " + "; ".join(parts), ())


def vram_check(
    view: GpuView,
    holders: HoldersFacts | None,
    own_pids: Iterable[int] = (),
    own_pgid: int | None = None,
) -> tuple[Check, list[str]]:
    """``vram``: processes holding the GPU that nvidia-smi does not list (U11), as a dry-run
    reaping report — outlive never kills them. Returns the check and what could not be seen."""
    could_not: list[str] = []
    if not view.ok:
        return Check("vram", Status.SKIP, "no GPU visible to check", ("U11",)), could_not
    own = set(own_pids)
    all_holders = list((holders or {}).get("holders") or [])
    if holders is None or holders.get("error"):
        could_not.append(
            "holders of /dev/nvidia*: " + str((holders or {}).get("error") or "not collected")
        )
    unreadable = (holders or {}).get("unreadable")
    if unreadable:
        could_not.append(
            f"holders of /dev/nvidia*: the open files of {unreadable} process(es) "
            "of other users were not readable (run as root to see them)"
        )
    if (holders or {}).get("truncated"):
        could_not.append("holders of /dev/nvidia*: the /proc scan hit its time budget")
    app_pids = {int(p) for a in view.apps if isinstance(p := a.get("pid"), float)}

    def mine(h: Holder) -> bool:
        return h.get("pid") in own or (own_pgid is not None and h.get("pgid") == own_pgid)

    foreign = [h for h in all_holders if h.get("comm") not in SYSTEM_GPU_CLIENTS and not mine(h)]
    unlisted = [h for h in foreign if h.get("pid") not in app_pids]
    leftovers = [h for h in all_holders if own_pgid is not None and h.get("pgid") == own_pgid]
    leftovers = [h for h in leftovers if h.get("pid") not in own]
    if unlisted or leftovers:
        shown = [_holder(h, own_pgid) for h in (unlisted + leftovers)[:6]]
        return (
            Check(
                "vram",
                Status.WARN,
                "the GPU is held by process(es) nvidia-smi does not list: "
                + "; ".join(shown)
                + " — dry run: these are what a reaper would kill; outlive kills nothing. "
                "Check them (`fuser -v /dev/nvidia*`), then kill them yourself or restart "
                "the container",
                ("U11",),
            ),
            could_not,
        )
    others = [a for a in view.apps if int(_num(a.get("pid")) or -1) not in own]
    if others:
        shown = [
            f"pid {int(_num(a.get('pid')) or 0)} {a.get('process_name')} "
            f"({human_bytes((_num(a.get('used_gpu_memory')) or 0) * MIB)})"
            for a in others[:4]
        ]
        return (
            Check(
                "vram",
                Status.WARN,
                "other processes use the GPU: " + "; ".join(shown),
                ("U11",),
            ),
            could_not,
        )
    if not all_holders and not view.apps:
        ghosts = [
            r for r in view.rows if (_num(r.get("memory.used")) or 0.0) > VRAM_UNATTRIBUTED_WARN_MIB
        ]
        if ghosts:
            shown = [
                f"{_gpu_name(r)} has {human_bytes((_num(r.get('memory.used')) or 0) * MIB)} in use"
                for r in ghosts
            ]
            return (
                Check(
                    "vram",
                    Status.WARN,
                    "; ".join(shown) + " but no process here holds it (a dead context or "
                    "another container): restart the container or rent another box",
                    ("U11",),
                ),
                could_not,
            )
    return Check("vram", Status.PASS, "no stray process holds GPU memory", ("U11",)), could_not


def _holder(h: Holder, own_pgid: int | None) -> str:
    notes = []
    if h.get("state") == "Z":
        notes.append("zombie")
    if own_pgid is not None and h.get("pgid") == own_pgid:
        notes.append("left over from this run")
    note = f" [{', '.join(notes)}]" if notes else ""
    return f"pid {h.get('pid')} {h.get('comm')}{note}"


def throttle_check(view: GpuView) -> Check:
    """``gpu throttle``: clock event (throttle) reasons from ``-q -d PERFORMANCE`` (U23)."""
    if not view.ok:
        return Check("gpu throttle", Status.SKIP, "no GPU visible to check", ("U23",))
    if view.perf is None or not view.perf.gpus:
        return Check(
            "gpu throttle",
            Status.SKIP,
            "nvidia-smi -q -d PERFORMANCE gave no clock event reasons",
            ("U23",),
        )
    bad, capped = [], []
    for gpu in view.perf.gpus:
        hard = [r for r in gpu.active if r in HARD_THROTTLE or r in THERMAL_THROTTLE]
        if hard:
            bad.append(f"{gpu.bus_id}: {', '.join(hard)}")
        elif "SW Power Cap" in gpu.active:
            capped.append(gpu.bus_id)
    if bad:
        return Check(
            "gpu throttle",
            Status.WARN,
            "clocks cut by cooling or power outside your control ("
            + "; ".join(bad)
            + "): expect a 25-40 % slowdown with no error; rent another box if it persists",
            ("U23",),
        )
    note = f" ({', '.join(capped)} at its power limit, normal under full load)" if capped else ""
    return Check("gpu throttle", Status.PASS, "no thermal or hardware slowdown" + note, ("U23",))


def clocks_check(view: GpuView) -> Check:
    """``gpu clocks``: an SM clock below the base (default applications) clock while the GPU is
    hot means it is throttling, whatever utilisation says (U23, U21)."""
    if not view.ok:
        return Check("gpu clocks", Status.SKIP, "no GPU visible to check", ("U23",))
    hot = []
    known = False
    samples = _dmon_by_gpu(view)
    for row in view.rows:
        index = _num(row.get("index"))
        base = _num(row.get("clocks.default_applications.graphics"))
        pairs = [(_num(row.get("temperature.gpu")), _num(row.get("clocks.sm")))]
        pairs += [(s.get("gtemp"), s.get("pclk")) for s in samples.get(index, [])]
        for temp, clock in pairs:
            if temp is None or clock is None or base is None:
                continue
            known = True
            if temp >= GPU_HOT_C and clock < base:
                hot.append(
                    f"{_gpu_name(row)} at {temp:.0f} °C runs {clock:.0f} MHz < base {base:.0f}"
                )
                break
    if hot:
        return Check(
            "gpu clocks",
            Status.WARN,
            "; ".join(hot) + ": thermal throttling; rent a cooler box if it persists",
            ("U23",),
        )
    if not known:
        return Check(
            "gpu clocks",
            Status.SKIP,
            "nvidia-smi did not report temperature, SM clock and base clock",
            ("U23",),
        )
    return Check(
        "gpu clocks", Status.PASS, f"no GPU below its base clock at >= {GPU_HOT_C:.0f} °C", ("U23",)
    )


def _dmon_by_gpu(view: GpuView) -> dict[float | None, list[dict[str, float | None]]]:
    out: dict[float | None, list[dict[str, float | None]]] = {}
    for sample in view.dmon:
        out.setdefault(sample.get("gpu"), []).append(sample)
    return out


def feed_check(view: GpuView) -> Check:
    """``gpu feed``: utilisation only says a kernel ran; power and SM clock say whether work was
    done. Busy at low power = underfed (U21); idle while the job runs = CPU/data bound (U40)."""
    if not view.ok:
        return Check("gpu feed", Status.SKIP, "no GPU visible to check", ("U21",))
    if not view.dmon:
        return Check("gpu feed", Status.SKIP, "no nvidia-smi dmon samples", ("U21",))
    limits = {_num(r.get("index")): _num(r.get("power.limit")) for r in view.rows}
    underfed, idle, fine = [], [], []
    for index, samples in sorted(_dmon_by_gpu(view).items(), key=lambda kv: kv[0] or 0.0):
        sm = _mean(s.get("sm") for s in samples)
        pwr = _mean(s.get("pwr") for s in samples)
        limit = limits.get(index)
        label = f"GPU {int(index) if index is not None else '?'}"
        if sm is None:
            continue
        if sm < GPU_IDLE_SM_PCT:
            idle.append(f"{label} SM {sm:.0f} %")
        elif sm >= GPU_BUSY_SM_PCT and pwr is not None and limit:
            if pwr < GPU_UNDERFED_POWER_FRACTION * limit:
                underfed.append(f"{label} SM {sm:.0f} % at {pwr:.0f} W of {limit:.0f} W")
            else:
                fine.append(f"{label} SM {sm:.0f} % at {pwr:.0f} W")
        else:
            fine.append(f"{label} SM {sm:.0f} %" + (f" at {pwr:.0f} W" if pwr is not None else ""))
    n = len(view.dmon)
    if underfed:
        return Check(
            "gpu feed",
            Status.WARN,
            f"busy but underfed over {n} samples ({'; '.join(underfed)}): many tiny kernels "
            "read as high utilisation; look at the input pipeline and batch size",
            ("U21", "U24"),
        )
    if idle:
        return Check(
            "gpu feed",
            Status.WARN,
            f"the GPU is mostly idle over {n} samples ({'; '.join(idle)}): the job waits on "
            "the CPU or data — check threads against the CPU quota and the data loader",
            ("U40", "U24"),
        )
    return Check("gpu feed", Status.PASS, f"over {n} samples: {'; '.join(fine)}", ("U21",))


def _mean(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None
