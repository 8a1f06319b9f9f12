"""Every file the bundle ships to a box (the agent package ``box/``, ``outlive/wire.py``, the job
library: outlive/__init__, errors, ckpt/) stays stdlib-only and Python 3.8 syntax."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import outlive
import outlive.ckpt
from outlive.agent.bundle import bundle_files

PACKAGE_DIR = Path(outlive.__file__).resolve().parent
SHIPPED = sorted(src.resolve() for _, src in bundle_files() if src.suffix == ".py")
# What a function body may import on first use: the libraries whose objects it handles.
LAZY_ALLOWED = {"numpy", "torch", "lightning", "transformers"}


def _imported_roots(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
    roots: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements that run at import: the body, minus ``if TYPE_CHECKING:`` blocks, and what
    try/if blocks at the top level contain (not function or class bodies' nested functions)."""
    out: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        out.append(node)
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                pending.extend(getattr(node, block, []))
        if isinstance(node, ast.ExceptHandler):
            pending.extend(node.body)
        if isinstance(node, ast.ClassDef):
            pending.extend(n for n in node.body if not isinstance(n, ast.FunctionDef))
    return out


def test_every_bundled_python_file_is_checked() -> None:
    names = {rel for rel, _ in bundle_files()}
    assert {"box/__init__.py", "box/__main__.py", "box/main.py", "outlive/wire.py"} <= names
    assert {"outlive/__init__.py", "outlive/errors.py", "outlive/ckpt/core.py"} <= names
    assert len(SHIPPED) == len([n for n in names if n.endswith(".py")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_shipped_file_parses_as_python_3_8(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_shipped_file_imports_only_the_stdlib_at_import_time(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    stdlib = set(sys.stdlib_module_names) | {"outlive", "box", "__future__"}  # box: the agent
    at_import = _imported_roots(_module_level(tree))
    assert not at_import - stdlib, f"{path.name} imports {sorted(at_import - stdlib)} at import"
    anywhere = _imported_roots(list(ast.walk(tree)))
    foreign = anywhere - stdlib - LAZY_ALLOWED
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_importing_outlive_pulls_in_no_heavy_dependency(
    child_env: Callable[..., dict[str, str]],
) -> None:
    code = (
        "import json, sys\n"
        "import outlive\n"
        "from outlive import Checkpointer, progress\n"
        "heavy = ('numpy', 'pydantic', 'typer', 'rich', 'torch')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_importing_the_integrations_pulls_in_no_framework(
    child_env: Callable[..., dict[str, str]],
) -> None:
    code = (
        "import json, sys\n"
        "import outlive.ckpt.integrations.lightning, outlive.ckpt.integrations.hf\n"
        "import outlive.ckpt.state, outlive.ckpt.codec\n"
        "heavy = ('numpy', 'torch', 'lightning', 'transformers')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_public_surface_is_what_we_mean_to_export() -> None:
    assert sorted(outlive.ckpt.__all__) == [
        "CKPT_DIR_ENV",
        "Checkpointer",
        "GRACE_ENV",
        "MTBF_ENV",
        "PROGRESS_FILE_ENV",
        "ProgressWriter",
        "REQUEUE_EXIT_CODE",
        "Restored",
        "ResumableSampler",
        "Resumed",
        "SaveStats",
        "capture_rng",
        "capture_training_state",
        "daly_interval_s",
        "progress",
        "restore_rng",
        "restore_training_state",
    ]
    assert outlive.Checkpointer is outlive.ckpt.Checkpointer
    assert outlive.progress is outlive.ckpt.progress
