"""Hostile inputs are data, never shell: command arguments, project paths and run names with
quotes, spaces, ``$()``, ``;``, backticks, newlines and unicode either work literally or are refused
with one clear sentence (exit 2), leaving nothing half-created."""

from __future__ import annotations

import json
import sys

import pytest
from local_helpers import read_json_file

ARGV_JOB = """\
import json, os, sys
with open(os.path.join(os.environ["OUTLIVE_CKPT_DIR"], "argv.json"), "w", encoding="utf-8") as f:
    json.dump(sys.argv[1:], f)
print("argv:", sys.argv[1:])
"""


def test_command_arguments_are_passed_literally_never_through_a_shell(project, tmp_path):
    marker = tmp_path / "PWNED"
    hostile = [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"; touch {marker}",
        f"a && touch {marker} || true",
        'it\'s "quoted" and spaced',
        "line one\nline two",
        "ünïcödé ✓ 日本",
        "*",
        "--not-an-option",
        "",
    ]
    project.write("argv_job.py", ARGV_JOB)
    run_id = project.python("argv_job.py", *hostile, name="argv")
    st = project.wait_ended(run_id)
    assert st["state"] == "succeeded", st
    seen = read_json_file(project.dir / ".outlive" / "durable" / "argv" / "argv.json")
    assert seen == hostile
    assert not marker.exists(), "an argument was executed by a shell"
    spec = read_json_file(project.dir / ".outlive" / "runs" / run_id / "run.json")
    assert spec["command"][2:] == hostile


@pytest.mark.parametrize(
    "dirname",
    ['a\'b "c" $(d) ü', "p$HOME ${HOME}x ~y"],
    ids=["quotes-paren-unicode", "dollar-vars"],
)
def test_a_project_dir_with_quotes_dollar_paren_and_unicode_works_end_to_end(make_project, dirname):
    """The local target's paths are this machine's own and literal: ``$HOME`` in a directory
    name is part of the name (the agent expanded it and looked for another directory)."""
    project = make_project(dirname=dirname)
    project.write("argv_job.py", ARGV_JOB)
    run_id = project.python("argv_job.py", "x", name="weird-dir")
    st = project.status_cli(project.wait_ended(run_id)["run_id"])
    assert st["state"] == "succeeded", st
    assert st["run_dir"] == str(project.dir / ".outlive" / "runs" / run_id)
    assert st["ckpt_dir"] == str(project.dir / ".outlive" / "durable" / "weird-dir")
    assert read_json_file(project.dir / ".outlive/durable/weird-dir/argv.json") == ["x"]
    assert project.cli("logs", run_id).stdout == "argv: ['x']\n"
    listed = json.loads(project.cli("ls", "--json").stdout)["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    pulled = json.loads(project.cli("pull", run_id, "--json").stdout)
    assert pulled["ok"] is True and pulled["files"] >= 1


def test_a_run_name_full_of_shell_syntax_and_unicode_is_just_a_name(project, tmp_path):
    marker = tmp_path / "PWNED"
    name = f"x y'z\"$(touch {marker.name});`touch {marker.name}` ü"
    run_id = project.run(sys.executable, "-c", "print('ok')", name=name)
    st = project.wait_ended(run_id)
    assert st["state"] == "succeeded" and st["name"] == name
    assert (project.dir / ".outlive" / "durable" / name).is_dir()
    assert not marker.exists() and not (project.dir / marker.name).exists()
    # The name finds the run, as any name does.
    by_name = json.loads(project.cli("status", "--json", name).stdout)["runs"]
    assert [r["run_id"] for r in by_name] == [run_id]


@pytest.mark.parametrize(
    "name",
    ["bad\nname", "a/b", "..", "red\x9b31m", "esc\x1b]0;x\x07"],
    ids=["newline", "slash", "dotdot", "c1-csi", "osc"],
)
def test_a_name_that_cannot_be_a_directory_is_refused_and_nothing_is_created(project, name):
    done = project.cli("run", "--name", name, "--", "true", rc=2)
    assert done.stdout == ""
    err = done.stderr.strip()
    assert repr(name) in err and "--name" in err
    assert len(err.splitlines()) == 1, "the error must be one line"
    assert "Traceback" not in done.stderr
    # Nothing half-created: no run dir, no registry entry, no checkpoint dir.
    assert not (project.dir / ".outlive" / "runs").exists()
    assert not (project.dir / ".outlive" / "durable").exists()
    assert json.loads(project.cli("ls", "--json").stdout) == {"runs": []}


HOSTILE_LOG_JOB = """\
import sys
sys.stdout.buffer.write(b"\\x1b[32mstep 1\\x1b[0m\\r\\x1b]52;c;cHduZWQ=\\x07"
                        b"step 2\\x1b]0;owned\\x1b\\\\ done\\n")
"""


def test_logs_on_a_terminal_drop_clipboard_and_title_sequences_and_piped_stay_exact(project):
    """A job (or whoever writes its box's log) printing OSC 52 could set the clipboard of
    whoever ran `outlive logs`, and OSC 0 their window's title; on a terminal those are dropped,
    colours and \\r kept. Piped, the log is byte for byte what the job wrote."""
    import os
    import pty
    import subprocess

    from local_helpers import OUTLIVE

    project.write("hostile_log.py", HOSTILE_LOG_JOB)
    run_id = project.python("hostile_log.py", name="loud")
    assert project.wait_ended(run_id)["state"] == "succeeded"
    exact = b"\x1b[32mstep 1\x1b[0m\r\x1b]52;c;cHduZWQ=\x07step 2\x1b]0;owned\x1b\\ done\n"
    piped = subprocess.run([OUTLIVE, "logs", run_id], cwd=project.dir, env=project.env,
                           capture_output=True, timeout=60, check=True)  # fmt: skip
    assert piped.stdout == exact
    main, tty = pty.openpty()
    try:
        done = subprocess.run([OUTLIVE, "logs", run_id], cwd=project.dir, env=project.env,
                              stdout=tty, stderr=subprocess.PIPE, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        os.close(tty)
        shown = b""
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not data:
                break
            shown += data
    finally:
        os.close(main)
    assert b"\x1b]" not in shown and b"\x07" not in shown
    assert b"\x1b[32mstep 1\x1b[0m" in shown and b"step 2 done" in shown
