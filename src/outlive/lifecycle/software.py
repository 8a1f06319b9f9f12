"""What a run's box lacks to start its command: the ``launch`` reply names each program that is
not on the job's PATH there (one check, in the launch's own round trip), and here each becomes
the warning ``run`` prints: what is missing, what is there instead, and how software reaches a
box (the image, a venv on durable storage, a setup command)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["missing_program_warning", "missing_program_warnings"]


def missing_program_warning(target: str, durable: str, item: Mapping[str, object]) -> str:
    """One sentence for one ``missing_programs`` entry of a launch reply."""
    program = str(item.get("program"))
    near = [str(n) for n in item.get("near") or () if isinstance(n, str)]  # type: ignore[attr-defined]
    if "/" in program:
        return (
            f"{program} is not an executable file in the workdir of target {target!r}, so the "
            "run will fail with exit 127; check the path, `chmod +x` it, or run it through its "
            f"interpreter (`bash {program}`, `python3 {program}`)"
        )
    venv = f"{durable.rstrip('/')}/venv"
    there = f" (it has {', '.join(near)})" if near else ""
    instead = f"run it with `{near[0]}`, or " if near else ""
    return (
        f"target {target!r} has no `{program}` on the job's PATH{there}, so the run will fail "
        f"with exit 127 (command not found); {instead}install it in the image, or in a venv on "
        f"durable storage (`python3 -m venv {venv}`) and call `{venv}/bin/{program}`"
    )


def missing_program_warnings(
    target: str, durable: str, items: Iterable[Mapping[str, object]]
) -> tuple[str, ...]:
    return tuple(missing_program_warning(target, durable, item) for item in items)
