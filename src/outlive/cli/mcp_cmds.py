"""`mcp`: serve the lifecycle as MCP tools over stdio (imports the SDK only here)."""

from __future__ import annotations

from outlive.cli.grammar import McpArgs


def mcp(args: McpArgs) -> int:
    import importlib.util

    from outlive.config import load_config
    from outlive.errors import UsageError

    if importlib.util.find_spec("mcp") is None:
        raise UsageError(
            "`outlive mcp` needs the MCP SDK, which is not installed here; install the extra: "
            "`uv tool install 'outlive[mcp]'` (or `pip install 'outlive[mcp]'`)"
        )
    from outlive.mcp_server import serve

    load_config()  # a broken outlive.toml is one sentence now, not an error on every tool call
    serve()
    return 0
