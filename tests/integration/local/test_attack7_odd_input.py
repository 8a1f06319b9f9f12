"""Odd command lines a newcomer types: an empty program (``outlive run -- ''``) is refused up
front in one sentence, exit 2, nothing launched (it used to launch a run that failed with
"could not start '': Permission denied")."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from local_helpers import Project


@pytest.mark.parametrize("command", [("",), ("", "train.py")])
def test_an_empty_program_is_refused_before_anything_is_launched(
    make_project: Callable[..., Project], command: tuple[str, ...]
) -> None:
    p = make_project()
    for json_flag in ((), ("--json",)):
        done = p.cli("run", *json_flag, "--", *command, rc=2)
        err = done.stderr.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert "empty argument" in err and done.stdout == ""
    assert p.run_dirs() == []
    assert '"runs": []' in p.cli("ls", "--json").stdout
