"""The box-side dispatch table: a run's backend, named in its ``run.json``, picks the module that
launches, probes, cancels, tails and supervises it. Setsid and tmux runs live in ``process.py``,
Slurm runs in ``slurm.py``; a new platform is a new module and one line here, never an ``if``
in the verbs. Modules load on first use, so probing setsid runs never imports the Slurm code.
"""

from __future__ import annotations

from outlive import wire

from .common import AgentError, Rec, submodule

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)

if TYPE_CHECKING:
    from typing import Dict, List, Protocol

    from .supervisor import Supervisor

    class Backend(Protocol):
        """What each entry of the table provides (a module with these functions)."""

        def launch(self, request: wire.LaunchRequest) -> Rec:
            """Create the run dir (``rundir.prepare_run``) and start the run; the launch reply."""

        def probe(self, runs: Dict[str, Rec], boot_now: str | None, now: float) -> Dict[str, Rec]:
            """Each run's RunProbe JSON, by run dir (``runs`` maps run dir to its spec)."""

        def cancel(self, run_dir: str, spec: Rec, grace_s: float) -> Rec:
            """Stop the run: TERM, then KILL after ``grace_s``; the cancel reply."""

        def ended(self, run_dir: str, spec: Rec) -> bool:
            """For ``logs -f``: the run is over although it left no exit record."""

        def supervisor(self, run_dir: str, launcher: List[str]) -> Supervisor:
            """The supervisor of ``supervise RUN_DIR [LAUNCHER...]`` for this run."""


TABLE = {
    wire.BACKEND_SETSID: "process",
    wire.BACKEND_TMUX: "process",
    wire.BACKEND_SLURM: "slurm",
}


def backend_of(spec: Rec) -> str:
    """The backend of a run from its ``run.json``; runs launched before run.json named one say
    ``detach`` (setsid or tmux), and the oldest plain runs say neither."""
    return str(spec.get("backend") or spec.get("detach") or wire.BACKEND_SETSID)


def lookup(backend: str) -> Backend | None:
    """The table's entry for ``backend``, imported on first use; None for an unknown one."""
    module = TABLE.get(backend)
    if module is None:
        return None
    found: Backend = submodule(module)
    return found


def entry(backend: str) -> Backend:
    """The table's entry for ``backend``, or AgentError naming the ones this agent knows."""
    found = lookup(backend)
    if found is None:
        raise AgentError(
            f"unknown backend {backend!r}; this agent knows {', '.join(wire.BACKENDS)}"
        )
    return found


def supervisor_for(run_dir: str, launcher: List[str]) -> Supervisor:
    """The supervisor of ``supervise RUN_DIR [LAUNCHER...]``: the run's backend picks it (a Slurm
    run's attempt puts LAUNCHER, e.g. torchrun on a multi-node run, before the job's command)."""
    from .records import read_spec

    return entry(backend_of(read_spec(run_dir) or {})).supervisor(run_dir, launcher)
