"""`mcp`: serve the lifecycle as MCP tools over stdio (imports the SDK only here)."""

from __future__ import annotations

from outlive.cli.grammar import McpArgs


def mcp(args: McpArgs) -> int:
    from outlive.config import load_config
    from outlive.mcp_server import serve

    load_config()  # a broken outlive.toml is one sentence now, not an error on every tool call
    serve()
    return 0
