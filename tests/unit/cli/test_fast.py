"""The fast path must accept exactly what the typer commands accept, and behave the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from outlive.cli import fast
from outlive.cli.app import app

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def _typer_options(command: str) -> set[str]:
    import typer.main

    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {s for p in cmd.params for s in getattr(p, "opts", []) if s.startswith("-")}


@pytest.mark.parametrize("command", fast.FAST_COMMANDS)
def test_fast_parser_accepts_exactly_the_typer_options(command: str) -> None:
    assert fast.option_names(command) == _typer_options(command)


def test_help_and_unknown_options_fall_through_to_typer() -> None:
    assert fast.try_fast(["status", "--help"]) is None
    assert fast.try_fast(["status", "--bogus"]) is None
    assert fast.try_fast(["run", "true"]) is None  # no `--`: typer explains the usage
    assert fast.try_fast(["ls"]) is None


def test_status_json_on_the_fast_path_prints_one_document(tmp_path: Path) -> None:
    (tmp_path / "outlive.toml").write_text("[project]\nname = 'p'\n")
    out = subprocess.run(
        [OUTLIVE, "status", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == {"runs": []}


def test_fast_path_does_not_import_typer_or_pydantic(tmp_path: Path) -> None:
    (tmp_path / "outlive.toml").write_text("[project]\nname = 'p'\n")
    code = (
        "import sys; sys.argv = ['outlive', 'status', '--json']\n"
        "from outlive.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('typer', 'pydantic') if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stderr.strip() == "['pydantic']" or out.stderr.strip() == "[]"
    assert "typer" not in out.stderr
