"""Drive ``outlive`` as it runs on a machine without the training framework.

``no_torch_env(directory, env)`` writes a ``sitecustomize`` into ``directory`` that puts a finder
first on ``sys.meta_path``; it answers ``import torch`` exactly as an interpreter on which torch
was never installed does (``ModuleNotFoundError`` naming ``torch``). The returned environment sets
``PYTHONPATH`` to that directory, and the function proves the shim holds before returning it.
``SAVE_PT`` is a job that writes a real torch file into ``$OUTLIVE_CKPT_DIR/model.pt``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Mapping

from outlive.testing._errors import TestbedError

NO_TORCH = """\
import sys


class _NoTorch:
    # Answers like an interpreter on which torch was never installed.
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
"""

SAVE_PT = """\
import os
from pathlib import Path

import torch

ckpt = Path(os.environ["OUTLIVE_CKPT_DIR"])
ckpt.mkdir(parents=True, exist_ok=True)
torch.save({"w": torch.arange(6.0)}, ckpt / "model.pt")
"""


def no_torch_env(directory: Path, env: Mapping[str, str]) -> Dict[str, str]:
    """``env`` plus a PYTHONPATH under which ``import torch`` fails as if torch were absent."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(NO_TORCH)
    shimmed = dict(env, PYTHONPATH=str(directory))
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"], env=shimmed, capture_output=True, text=True
    )
    if probe.returncode == 0 or "No module named 'torch'" not in probe.stderr:
        raise TestbedError(f"the no-torch shim did not hold: {probe.stderr.strip()!r}")
    return shimmed
