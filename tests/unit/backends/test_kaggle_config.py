"""A kaggle target from outlive.toml: its keys become KaggleOptions (the session budget from the
profile's commit timeout for the machine asked for), and every bad value is one sentence naming
the file and the target (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.backends.kaggle_backend import kernel_slug
from outlive.backends.kaggle_render import slug_problem
from outlive.config import KaggleOptions, Target, load_config
from outlive.errors import ConfigError

GOOD = """
[targets.kg]
profile = "kaggle"
owner = "alice"
accelerator = "gpu"
internet = true
dataset_sources = ["alice/my-data"]
model_sources = ["alice/bert/pyTorch/base/1"]
is_private = false
"""


def _load(tmp_path: Path, toml: str) -> Target:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "outlive.toml").write_text(toml)
    return load_config(d).target("kg")


def test_a_kaggle_target_gets_its_options_and_the_gpu_commit_budget(tmp_path: Path) -> None:
    t = _load(tmp_path, GOOD)
    assert (t.kind, t.backend, t.connection.transport, t.connection.host) == (
        "kaggle", "kaggle", "local", None,
    )  # fmt: skip
    assert t.options == KaggleOptions(
        owner="alice", accelerator="gpu", internet=True, dataset_sources=("alice/my-data",),
        model_sources=("alice/bert/pyTorch/base/1",), is_private=False, budget_s=32400.0,
        margin_s=1800.0,
    )  # fmt: skip
    assert Target.from_json(t.to_json()) == t  # the config cache round-trips it


def test_a_cpu_kaggle_target_gets_the_cpu_commit_budget(tmp_path: Path) -> None:
    t = _load(tmp_path, '[targets.kg]\nprofile = "kaggle"\nowner = "alice"\n')
    assert isinstance(t.options, KaggleOptions)
    assert (t.options.accelerator, t.options.internet, t.options.budget_s) == ("none", False, 43200)


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        ("", "owner = None must be your Kaggle username"),
        ('owner = "alice"\naccelerator = "h100"', "accelerator = 'h100' is not one of none, gpu"),
        ('owner = "alice"\nkernel_slug = "Bad Slug"', "kernel slug 'Bad Slug' must be 5-50"),
        ('owner = "alice"\ndataset_sources = ["nope"]', "dataset_sources has 'nope'"),
        ('owner = "alice"\nhost = "box"', "has host set, but a kaggle target"),
        ('owner = "alice"\nsession_budget_s = 60\nsession_margin_s = 60', "is not below"),
    ],
)
def test_a_bad_kaggle_value_is_one_sentence(tmp_path: Path, lines: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f'[targets.kg]\nprofile = "kaggle"\n{lines}\n')
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert "[targets.kg]" in message and words in message, message


@pytest.mark.parametrize(
    ("project", "name"), [("proj", "toy"), ("My_Project!", "train.py"), ("x" * 80, "y" * 80)]
)
def test_a_run_gets_a_kernel_slug_kaggle_accepts(project: str, name: str) -> None:
    slug = kernel_slug(project, name, "20261203-140510-1406d6")
    assert slug.endswith("-1406d6") and slug_problem(slug) is None, slug
