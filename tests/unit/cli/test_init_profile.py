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


@pytest.mark.parametrize(
    "dirname",
    ['it\'s "quoted"', "back\\slash $ (x) [x] #no", "ünïcödé ✓ 日本"],
    ids=["quotes", "backslash-dollar-brackets-hash", "unicode"],
)
def test_init_writes_the_directory_name_as_one_toml_string(tmp_path: Path, dirname: str) -> None:
    """The project's name (its directory's) is written TOML-escaped: the file loads as written,
    names the project exactly, and each commented example loads once uncommented."""
    import tomllib

    from outlive.config import load_config

    d = tmp_path / dirname
    (d / ".git").mkdir(parents=True)
    done = _cli(d, "init", "--profile", "runpod")
    assert done.returncode == 0, done.stderr
    text = (d / "outlive.toml").read_text()
    assert tomllib.loads(text)["project"]["name"] == dirname
    cfg = load_config(d)
    assert cfg.project_name == dirname
    assert [t.placement.workdir for t in cfg.targets.values() if t.profile == "runpod"] == [
        f"/workspace/{dirname}"
    ]
    examples = [ln[2:] for ln in text.splitlines() if ln.startswith("# workdir = ")]
    assert [tomllib.loads(ln)["workdir"] for ln in examples] == [
        f"/workspace/{dirname}",
        f"/root/{dirname}",
    ]


@pytest.mark.parametrize(
    ("dirname", "shown"),
    [("two\nlines", "'two\\nlines'"), ("p$HOME", "'p$HOME'")],
    ids=["newline", "a-box-expands-it"],
)
def test_init_in_a_directory_whose_name_cannot_be_the_project_writes_nothing(
    tmp_path: Path, dirname: str, shown: str
) -> None:
    """A newline, or a $VAR a box's agent would expand in /workspace/{project}."""
    d = tmp_path / dirname
    (d / ".git").mkdir(parents=True)
    done = _cli(d, "init")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert shown in done.stderr and "rename this directory" in done.stderr
    assert not (d / "outlive.toml").exists()


def test_a_toml_string_escapes_del_as_toml_wants() -> None:
    import tomllib

    from outlive.config import json_quoted

    value = 'a\x7fb\n"c'
    assert tomllib.loads("x = " + json_quoted(value))["x"] == value
