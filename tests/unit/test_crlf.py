"""Windows line endings (U26): a run checks what it executes, each with the fix for its type."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.errors import UsageError
from outlive.lifecycle.push import check_line_endings, crlf_problem, crlf_warnings, used_files


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "run.sh").write_bytes(b"#!/bin/bash\r\necho hi\r\n")
    (tmp_path / "train.py").write_bytes(b"import sys\r\nprint(1)\r\n")
    (tmp_path / "tool.py").write_bytes(b"#!/usr/bin/env python3\r\nprint(1)\r\n")
    (tmp_path / "launch").write_bytes(b"#!/bin/sh\r\nexec python3 train.py\r\n")
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "old.sh").write_bytes(b"echo old\r\n")
    (tmp_path / "ok.sh").write_bytes(b"#!/bin/bash\necho ok\n")
    return tmp_path


def test_only_the_files_a_command_names_are_used(root: Path) -> None:
    cmds = [["bash", "./run.sh", "--flag", "x"], ["python", "train.py"], ["true"]]
    assert used_files(root, cmds) == ["run.sh", "train.py"]
    assert used_files(root, [["cat", "../etc/passwd", "/etc/passwd", "a\x00b"]]) == []


def test_a_python_file_with_crlf_run_by_python_is_fine(root: Path) -> None:
    assert crlf_problem(root, "train.py") is None
    check_line_endings(root, [["python", "train.py"]])  # no refusal


@pytest.mark.parametrize(
    ("command", "names", "fix"),
    [
        (["bash", "run.sh"], "run.sh has Windows (CRLF) line endings", "dos2unix run.sh"),
        (["./tool.py"], "tool.py starts with a #! line that ends in CRLF", "python tool.py"),
        (["./launch"], "launch has Windows (CRLF) line endings", "dos2unix launch"),
    ],
)
def test_a_run_of_a_crlf_script_is_refused_with_the_fix_for_its_type(
    root: Path, command: list[str], names: str, fix: str
) -> None:
    with pytest.raises(UsageError) as info:
        check_line_endings(root, [command])
    msg = str(info.value)
    assert names in msg and fix in msg and "U26" in msg and "\n" not in msg


def test_a_crlf_script_the_run_does_not_use_does_not_block_it(root: Path) -> None:
    check_line_endings(root, [["python", "train.py"], ["bash", "ok.sh"]])


def test_push_alone_warns_about_every_crlf_shell_script(root: Path) -> None:
    files = ["launch", "ok.sh", "run.sh", "tool.py", "train.py", "vendor/old.sh"]
    warned = crlf_warnings(root, files)
    assert [w.split()[0] for w in warned] == ["run.sh", "vendor/old.sh"]
