"""The agent's protocol, run as the real script: one JSON request on stdin, one JSON reply on
stdout; hostile names and commands are data that is either used literally or refused in one
sentence before anything is created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from outlive.agent import box
from outlive.agent.box import common as box_common

BOX = Path(box.__file__).parent  # python runs the package dir (box/__main__.py)


def _agent(verb: str, request: object | str) -> tuple[int, dict]:
    stdin = request if isinstance(request, str) else json.dumps(request)
    done = subprocess.run(
        [sys.executable, str(BOX), verb],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)  # the whole stdout is one document


def _launch_request(workdir: Path, **over: object) -> dict:
    req = {
        "run_id": "20260101-000000-abcdef",
        "name": "ok",
        "command": ["true"],
        "workdir": str(workdir),
    }
    req.update(over)
    return req


def test_probe_replies_with_one_json_document(tmp_path):
    rc, reply = _agent("probe", {"run_dirs": [str(tmp_path / "none")]})
    assert rc == 0 and reply["ok"] is True
    assert reply["result"]["runs"][0]["state"] == "unknown"


def test_an_unknown_verb_is_a_usage_reply_with_exit_2():
    rc, reply = _agent("explode", {})
    assert rc == 2 and reply["ok"] is False and "usage" in reply["error"]


@pytest.mark.parametrize("stdin", ["{not json", "[1, 2]"], ids=["invalid", "not-an-object"])
def test_a_bad_request_is_an_error_reply_not_a_traceback(stdin):
    rc, reply = _agent("probe", stdin)
    assert rc == 0 and reply["ok"] is False and reply["error"]


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"name": "a/b"}, ["'a/b'", "--name"]),
        ({"name": "bad\nname"}, ["'bad\\nname'", "--name"]),
        ({"name": ".."}, ["'..'"]),
        ({"name": "csi\x9b31m"}, ["'csi\\x9b31m'", "control character"]),
        ({"name": "nel\x85x"}, ["'nel\\x85x'", "control character"]),
        ({"name": "x$HOME"}, ["'x$HOME'", "cannot hold '$' before"]),
        ({"name": ""}, ["1-200 bytes"]),
        ({"name": "x" * 201}, ["1-200 bytes"]),
        ({"run_id": "../../etc"}, ["'../../etc'"]),
        ({"command": ["echo", "a\x00b"]}, ["NUL"]),
        ({"command": []}, ["non-empty list"]),
        ({"command": "echo hi; touch PWNED"}, ["list of strings"]),
    ],
    ids=[
        "slash",
        "newline",
        "dotdot",
        "c1-csi",
        "c1-nel",
        "dollar",
        "empty",
        "too-long",
        "run-id-escape",
        "nul",
        "empty-command",
        "shell-string",
    ],
)
def test_launch_refuses_what_cannot_be_data_and_creates_nothing(tmp_path, over, words):
    rc, reply = _agent("launch", _launch_request(tmp_path, **over))
    assert rc == 0 and reply["ok"] is False
    error = reply["error"]
    assert "\n" not in error
    for word in words:
        assert word in error
    assert list(tmp_path.iterdir()) == [], "a refused launch must leave nothing behind"


def test_launch_into_a_missing_workdir_says_push_first(tmp_path):
    rc, reply = _agent("launch", _launch_request(tmp_path / "absent"))
    assert rc == 0
    assert reply["ok"] is False and "push" in reply["error"]


@pytest.mark.parametrize(
    "name",
    ["with space", 'it\'s "quoted"', "$(touch PWNED)", "a;b`c`", "ünïcödé ✓", "-dash", "..."],
)
def test_names_that_are_valid_directory_names_are_accepted_as_is(name):
    assert box_common.check_name(name) == name
