"""``outlive mcp``: the lifecycle as Model Context Protocol tools over stdio, with the rules
enforced rather than described (``down`` in two calls with a one-time token, no secret through
any tool, every call bounded by a stated timeout).

    server       the tools (typed inputs, the CLI's --json documents as structured output)
    tools        their bodies: the same library calls the CLI commands make
    guard        argument rules (paths stay in the project, no secret in a command)
    gate_tokens  the one-time confirmation tokens of ``down``
    resources    the gotcha catalog and platform profiles
    shapes       the output schemas

Importing this package imports the ``mcp`` SDK; the CLI does so only when ``mcp`` runs.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["serve"]


def serve(project: Path | None = None) -> None:
    """Serve the project at ``project`` (the current directory) on stdin/stdout until EOF."""
    from outlive.mcp_server.server import build

    build(project or Path.cwd()).run("stdio")
