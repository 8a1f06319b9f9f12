"""The agent's Slurm ``launch`` in this process, for a target without ``host`` (``sbatch`` here).

A local agent is otherwise a second interpreter (``python -S <bundle> launch``) that imports the
agent, reads the request and runs ``sbatch``: ~50-70 ms before the job is even submitted, every
launch. Here the same verb of the same bundle (``.outlive/lib/<hash>/box``, loaded under a name of
its own, so its ``agent_dir()`` and the job's ``PYTHONPATH`` are the bundle's, as before) answers
the same JSON request; the reply goes through the client's own reading, so errors read the same.
``sbatch`` still runs as a child with this process's environment, which is what the agent
subprocess inherited. Anything else (a remote login host, a pooled channel) calls the agent as
usual; so does a bundle that cannot be loaded here (nothing was submitted yet).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from outlive.agent.client import AgentClient
from outlive.transport.base import Completed

VERB = "launch"


def call_launch(agent: AgentClient, request: Mapping[str, object]) -> Any:
    """The agent's ``launch`` reply for ``request`` (its result; BoxError as the client raises)."""
    verbs = _local_verbs(agent)
    if verbs is None:
        return agent.call(VERB, request)
    req = json.loads(json.dumps(request))  # exactly what the agent would have read
    reply = verbs.answer(VERB, req)
    done = Completed((VERB,), 0, verbs.framed(reply), b"")
    return agent._reply(VERB, done)


def _local_verbs(agent: AgentClient) -> ModuleType | None:
    """The ``verbs`` module of the agent's local bundle, loaded once per bundle directory; None
    where the agent is not a plain local one."""
    lib = agent.local_dir
    if lib is None or agent.transport.is_remote or agent.pool is not None:
        return None
    root = lib / "box"
    name = "_outlive_box_" + hashlib.sha256(str(root).encode()).hexdigest()[:16]
    loaded = sys.modules.get(name + ".verbs")
    if loaded is not None:
        return loaded
    try:
        spec = importlib.util.spec_from_file_location(
            name, root / "__init__.py", submodule_search_locations=[str(root)]
        )
        if spec is None or spec.loader is None:
            return None
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
        return importlib.import_module(name + ".verbs")
    except (ImportError, OSError, SyntaxError):
        sys.modules.pop(name, None)
        return None
