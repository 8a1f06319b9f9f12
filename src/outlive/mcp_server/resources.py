"""Resources an agent reads on demand: each gotcha catalog entry (``outlive://gotcha/ID``), an
index of them (``outlive://gotchas``), and each platform profile with its danger clocks first
(``outlive://profile/NAME``). The same JSON as ``outlive gotcha ID --json`` and
``outlive profiles NAME --json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.resources import FunctionResource

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from outlive.gotchas import Gotcha
    from outlive.profiles import Profile

JSON = "application/json"


def add_resources(mcp: MCPServer[Any], project: Path) -> None:
    from outlive.cli.catalog_cmds import gotcha_json
    from outlive.config import load_config
    from outlive.gotchas import CATALOG
    from outlive.profiles import list_profiles

    def index() -> str:
        return json.dumps({"gotchas": [{"id": g.id, "title": g.title} for g in CATALOG]})

    mcp.add_resource(
        FunctionResource.from_function(
            index, "outlive://gotchas", name="gotchas", mime_type=JSON,
            description="Every gotcha of the catalog: id and title.",
        )
    )  # fmt: skip

    def entry(g: Gotcha) -> FunctionResource:
        return FunctionResource.from_function(
            lambda: json.dumps(gotcha_json(g)), f"outlive://gotcha/{g.id}", name=f"gotcha {g.id}",
            title=g.title, mime_type=JSON, description=f"{g.id}: {g.title}",
        )  # fmt: skip

    for g in CATALOG:
        mcp.add_resource(entry(g))

    def profile(p: Profile) -> FunctionResource:
        from outlive.profiles.render import to_json

        def read() -> str:
            clocks = [c.model_dump(mode="json") for c in p.clocks_first()]
            return json.dumps({"danger_clocks": clocks, "profile": to_json(p)})

        return FunctionResource.from_function(
            read, f"outlive://profile/{p.name}", name=f"profile {p.name}", title=p.title,
            mime_type=JSON, description=f"{p.title}: danger clocks first, then the facts.",
        )  # fmt: skip

    for p in list_profiles(load_config(project).profile_dirs):
        mcp.add_resource(profile(p))
