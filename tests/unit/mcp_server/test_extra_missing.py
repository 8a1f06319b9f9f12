"""`outlive mcp` without the `mcp` extra: one sentence naming the extra, nothing served."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from outlive.cli.grammar import McpArgs
from outlive.cli.mcp_cmds import mcp
from outlive.errors import UsageError


def test_mcp_without_the_sdk_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "outlive.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    real = importlib.util.find_spec

    def no_mcp(name: str, *a: object, **k: object) -> object:
        return None if name == "mcp" else real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", no_mcp)
    with pytest.raises(UsageError) as err:
        mcp(McpArgs())
    assert "outlive[mcp]" in str(err.value)
    assert "\n" not in str(err.value)
