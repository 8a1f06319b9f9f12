"""Platform backends on the client side: one module per platform behind one interface
(:class:`~outlive.backends.base.Backend`); the lifecycle never asks which one it has.

``base``          the interface, the typed replies, and :class:`AgentBackend` (agent-reached boxes)
``process``       a process on this machine or an SSH box, detached with setsid or tmux
``slurm``         a Slurm job (array) submitted with sbatch; ``slurm_script`` renders the script

Adding a platform: a module here, its box-side entry in ``outlive/agent/box/``, a profile, and
one line in :data:`BACKENDS` (docs/architecture.md, "Adding a platform").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outlive.agent.client import AgentClient
    from outlive.backends.base import Backend
    from outlive.config import Target
    from outlive.store import RunRecord

# Target.backend → the module and class implementing it (imported on first use).
BACKENDS = {
    "process": ("outlive.backends.process", "ProcessBackend"),
    "slurm": ("outlive.backends.slurm", "SlurmBackend"),
}


def backend_for(
    target: Target, agent: AgentClient, records: Callable[[], Iterable[RunRecord]]
) -> Backend:
    """The backend for ``target``, reaching its box through ``agent``."""
    import importlib

    module, cls = BACKENDS[target.backend]
    backend: Backend = getattr(importlib.import_module(module), cls)(target, agent, records)
    return backend
