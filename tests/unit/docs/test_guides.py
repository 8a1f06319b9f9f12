"""The platform guides: each exists, and the local one is run as written (a newcomer's session)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GUIDES = ROOT / "docs" / "guides"


def _bash_blocks(path: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize(
    "name", ["local", "ssh", "runpod", "paperspace", "slurm", "kubernetes", "kaggle"]
)
def test_every_target_kind_has_a_guide_with_a_session(name: str) -> None:
    blocks = _bash_blocks(GUIDES / f"{name}.md")
    assert blocks and all("outlive " in b for b in blocks)


def test_the_local_guide_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OUTLIVE_NO_DAEMON"] = "1"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    script = "set -euo pipefail\n" + _bash_blocks(GUIDES / "local.md")[0]
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.count("done at step 50") == 2
    assert '"state": "succeeded"' in done.stdout
    assert list((tmp_path / ".outlive" / "pulled" / "first").rglob("PULL_VERIFIED.json"))


def test_the_colab_guide_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OUTLIVE_NO_DAEMON"] = "1"
    env["TMPDIR"] = str(tmp_path / "vm-tmp")  # a fresh VM's local disk: its own session clock
    (tmp_path / "vm-tmp").mkdir()
    (tmp_path / "outlive.toml").write_text('[project]\nname = "guide"\n')
    example = ROOT / "src" / "outlive" / "examples" / "train_numpy.py"
    (tmp_path / "train_numpy.py").write_bytes(example.read_bytes())
    script = "set -euo pipefail\n" + _bash_blocks(GUIDES / "colab.md")[0]
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    final = tmp_path / "drive" / "guide" / "checkpoints" / "toy" / "final.npz"
    assert final.is_file()
    out = (tmp_path / "toy.ipynb").read_text()
    assert "already ended (succeeded); nothing to do" in out  # --inplace keeps the outputs


def test_the_kaggle_guide_runs_as_written_against_the_fake(tmp_path: Path) -> None:
    from outlive.testing import providers

    name = f"guide{os.getpid()}"
    doc = providers.up("kaggle", name)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
        env.update(doc["env"], OUTLIVE_NO_DAEMON="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        (tmp_path / "outlive.toml").write_text('[project]\nname = "guide"\n')
        example = ROOT / "src" / "outlive" / "examples" / "train_numpy.py"
        (tmp_path / "train_numpy.py").write_bytes(example.read_bytes())
        script = "set -euo pipefail\n" + _bash_blocks(GUIDES / "kaggle.md")[0]
        done = subprocess.run(
            ["bash", "-c", f"timeout 200 bash -c {_quote(script)}"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        providers.down("kaggle", name)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "kaggle version 1" in " ".join(done.stdout.split())
    assert list((tmp_path / ".outlive" / "pulled" / "toy").rglob("PULL_VERIFIED.json"))


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
