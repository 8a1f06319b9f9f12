"""Platform backends on the client side: one module per platform behind one interface
(:class:`~outlive.backends.base.Backend`); the lifecycle never asks which one it has.

``base``          the interface, the typed replies, and :class:`AgentBackend` (agent-reached boxes)
``process``       a process on this machine or an SSH box, detached with setsid or tmux
``slurm``         a Slurm job (array) submitted with sbatch; ``slurm_script`` renders the script
``kubernetes``    a Kubernetes Job through the user's kubectl; ``k8s_manifest`` renders the objects,
                  ``k8s_state`` judges the API's evidence, ``k8s_values`` checks target values
``kaggle_backend`` a Kaggle kernel through the user's kaggle CLI (``kaggle_cli``); a run longer
                  than a session is a chain of versions (``kaggle``), ``kaggle_render`` renders
                  each push, ``kaggle_values`` checks target values

Adding a platform: a module here, its box-side entry in ``outlive/agent/box/``, a profile, and
one line in :data:`BACKENDS` (docs/architecture.md, "Adding a platform").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outlive.agent.client import AgentClient
    from outlive.backends.base import Backend, ProjectRef
    from outlive.config import Target
    from outlive.store import RunRecord

# Target.backend → the module and class implementing it (imported on first use).
BACKENDS = {
    "process": ("outlive.backends.process", "ProcessBackend"),
    "slurm": ("outlive.backends.slurm", "SlurmBackend"),
    "kubernetes": ("outlive.backends.kubernetes", "KubernetesBackend"),
    "kaggle": ("outlive.backends.kaggle_backend", "KaggleBackend"),
}


def backend_for(
    target: Target,
    agent: AgentClient,
    records: Callable[[], Iterable[RunRecord]],
    project: ProjectRef | None = None,
) -> Backend:
    """The backend for ``target``, reaching its box through ``agent``, for ``project``."""
    import importlib

    module, cls = BACKENDS[target.backend]
    factory = getattr(importlib.import_module(module), cls)
    backend: Backend = factory(target, agent, records, project)
    return backend
