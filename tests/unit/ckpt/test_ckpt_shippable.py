"""The shipped files (outlive/__init__, errors, ckpt/) stay stdlib-only and Python 3.8 syntax."""

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

PACKAGE_DIR = Path(outlive.__file__).resolve().parent
SHIPPED = sorted(
    [PACKAGE_DIR / "__init__.py", PACKAGE_DIR / "errors.py", *(PACKAGE_DIR / "ckpt").glob("*.py")]
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_shipped_file_parses_as_python_3_8(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_shipped_file_imports_only_the_stdlib_and_itself(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    foreign = roots - set(sys.stdlib_module_names) - {"outlive", "__future__"}
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


def test_public_surface_is_what_we_mean_to_export() -> None:
    assert sorted(outlive.ckpt.__all__) == [
        "CKPT_DIR_ENV",
        "Checkpointer",
        "PROGRESS_FILE_ENV",
        "ProgressWriter",
        "REQUEUE_EXIT_CODE",
        "Restored",
        "progress",
    ]
    assert outlive.Checkpointer is outlive.ckpt.Checkpointer
    assert outlive.progress is outlive.ckpt.progress
