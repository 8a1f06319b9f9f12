"""Argument rules of the MCP tools that the CLI does not need: paths stay in the project, and
no credential travels in a command."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.errors import UsageError
from outlive.mcp_server import guard


@pytest.mark.parametrize(
    "word",
    [
        "HF_TOKEN=hf_x1",
        "--api-key=sk-9",
        "AWS_SECRET_ACCESS_KEY=AK7Q",
        "password=pw8Z",
        "WANDB_API_KEY=w4",
    ],
)
def test_a_credential_in_a_command_is_refused_without_echoing_it(word: str) -> None:
    with pytest.raises(UsageError, match="secret push") as err:
        guard.command(["python", "train.py", word])
    assert word.split("=", 1)[1] not in str(err.value)


@pytest.mark.parametrize(
    "word", ["--max_tokens=5", "--tokenizer=gpt2", "HF_TOKEN_PATH=/x", "--steps=3", "$(x)"]
)
def test_ordinary_words_pass(word: str) -> None:
    assert guard.command(["python", word]) == ["python", word]


@pytest.mark.parametrize("path", ["../x", "a/../../b", "/etc", "~/x", "", "a\x00b"])
def test_paths_outside_the_project_are_refused(path: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        guard.project_path(tmp_path, path, "dir")


def test_a_path_inside_the_project_is_joined(tmp_path: Path) -> None:
    assert guard.project_path(tmp_path, "a b/'c'", "dir") == tmp_path / "a b" / "'c'"
