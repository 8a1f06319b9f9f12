"""`outlive init --profile NAME`: a commented target for that platform that loads as written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from outlive.cli.templates import RUNNABLE_KINDS
from outlive.profiles import list_profiles

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OUTLIVE, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("profile", [p.name for p in list_profiles() if p.kind in RUNNABLE_KINDS])
def test_init_profile_writes_a_target_that_loads(tmp_path: Path, profile: str) -> None:
    (tmp_path / ".git").mkdir()
    assert _cli(tmp_path, "init", "--profile", profile).returncode == 0
    text = (tmp_path / "outlive.toml").read_text()
    assert f'profile = "{profile}"' in text
    assert ("context" if profile == "kubernetes" else "ssh_config") in text
    done = _cli(tmp_path, "targets", "--json")
    assert done.returncode == 0, done.stderr
    made = [t for t in json.loads(done.stdout)["targets"] if t["profile"] == profile]
    assert len(made) == 1 and made[0]["workdir"] and made[0]["durable"]
    if profile == "slurm":
        assert made[0]["kind"] == "slurm" and "partition" in text and "SLURM_CONF" in text
    if profile == "kubernetes":
        assert made[0]["kind"] == "kubernetes" and "pvc" in text and "image" in text


def test_init_profile_kaggle_writes_a_kaggle_target_that_loads(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert _cli(tmp_path, "init", "--profile", "kaggle").returncode == 0
    text = (tmp_path / "outlive.toml").read_text()
    assert 'profile = "kaggle"' in text and "KAGGLE_KEY" in text and "internet = false" in text
    done = _cli(tmp_path, "targets", "--json")
    assert done.returncode == 0, done.stderr
    made = [t for t in json.loads(done.stdout)["targets"] if t["profile"] == "kaggle"]
    assert len(made) == 1 and made[0]["kind"] == "kaggle", made


@pytest.mark.parametrize("profile", ["colab", "no-such-platform"])
def test_init_profile_of_a_platform_it_cannot_run_on_is_one_sentence(
    tmp_path: Path, profile: str
) -> None:
    (tmp_path / ".git").mkdir()
    done = _cli(tmp_path, "init", "--profile", profile)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "outlive.toml").exists()
