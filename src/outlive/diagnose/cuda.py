"""The CUDA triangle (U28, RP9, PS11): the host driver, the CUDA torch was built for, and the
GPU architectures torch carries kernels for must agree. On a rental the driver is fixed."""

from __future__ import annotations

from outlive.diagnose.facts import TorchFacts
from outlive.diagnose.gpu import GpuView
from outlive.diagnose.model import Check, Status

__all__ = ["triangle_check"]


def _version(text: object) -> tuple[int, int] | None:
    parts = str(text or "").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def triangle_check(view: GpuView, torch: TorchFacts | None) -> Check:
    """``cuda triangle``: the CUDA torch was built for must not be newer than what the host
    driver supports, and torch must carry kernels for the GPU's architecture (U28, RP9, PS11)."""
    name, gotchas = "cuda triangle", ("U28", "RP9", "PS11")
    if torch is None:
        return Check(name, Status.SKIP, "torch was not probed", gotchas)
    result = torch.get("result")
    python = torch.get("python")
    if not isinstance(result, dict):
        run = torch.get("run") or {}
        why = run.get("error") or "no answer"
        return Check(name, Status.SKIP, f"could not probe torch with {python}: {why}", gotchas)
    if result.get("import_error"):
        return Check(
            name,
            Status.SKIP,
            f"torch is not importable with {python} ({result['import_error']}); checked once it is",
            gotchas,
        )
    version, built = result.get("torch"), result.get("cuda")
    if not view.ok:
        return Check(
            name, Status.SKIP, f"torch {version} found, but no GPU is visible to check", gotchas
        )
    if not built:
        return Check(
            name,
            Status.FAIL,
            f"torch {version} is a CPU-only build on a box with {len(view.rows)} GPU(s): "
            "install a CUDA build of torch that the driver supports",
            gotchas,
        )
    problems, notes = [], []
    driver_cuda = view.perf.cuda_version if view.perf else None
    want, have = _version(built), _version(driver_cuda)
    if want and have:
        if want[0] > have[0]:
            problems.append(
                f"torch {version} is built for CUDA {built} but the host driver supports at most "
                f"CUDA {driver_cuda}; on a rental the driver is fixed — pick a box whose driver "
                "is new enough or a torch build for its CUDA"
            )
        elif want > have:
            notes.append(
                f"torch's CUDA {built} is newer than the driver's {driver_cuda}: it runs through "
                "minor-version compatibility, but PTX JIT and some features fail"
            )
    else:
        notes.append("the driver's CUDA version is unknown")
    if result.get("available") is False:
        said = "; ".join(result.get("warnings") or []) or result.get("cuda_error") or ""
        problems.append(
            f"torch {version} cannot use the GPU (torch.cuda.is_available() is False"
            + (f": {said}" if said else "")
            + ")"
        )
    if result.get("cuda_error"):
        problems.append(f"torch's CUDA probe failed: {result['cuda_error']}")
    arch = [str(a) for a in result.get("arch_list") or []]
    for i, cap in enumerate(result.get("capabilities") or []):
        verdict = _arch_verdict(int(cap[0]), int(cap[1]), arch)
        gpu = (result.get("names") or ["?"] * (i + 1))[i]
        if verdict == "none":
            problems.append(
                f"torch {version} has no kernels for {gpu} (sm_{cap[0]}{cap[1]}; it carries "
                f"{', '.join(arch) or 'none'}): 'no kernel image is available' at the first op"
            )
        elif verdict == "ptx":
            notes.append(f"{gpu} runs through PTX JIT (slow first start)")
    if problems:
        return Check(name, Status.FAIL, "; ".join(problems), gotchas)
    if notes:
        return Check(
            name, Status.WARN, f"torch {version} (CUDA {built}): " + "; ".join(notes), gotchas
        )
    caps = ", ".join(f"sm_{c[0]}{c[1]}" for c in result.get("capabilities") or [])
    return Check(
        name,
        Status.PASS,
        f"torch {version} built for CUDA {built} <= driver CUDA {driver_cuda}; kernels for {caps}",
        gotchas,
    )


def _arch_verdict(major: int, minor: int, arch_list: list[str]) -> str:
    """'sass' when torch carries binaries the GPU runs (same major, minor <= the GPU's), 'ptx'
    when only PTX it can JIT-compile, 'none' when neither."""
    ptx = False
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")  # sm_90a, sm_100f: arch-specific variants
        if len(digits) < 2 or not digits.isdigit():
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return "sass"
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            ptx = True
    return "ptx" if ptx else "none"
