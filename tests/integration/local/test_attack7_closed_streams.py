"""A shell that closes outlive's stdout (``outlive run ... >&-``, a cron line, a supervisor): the
command does its work and discards its output as asked, directly and through the daemon; it
was a traceback after the launch, and the next file opened could take descriptor 1."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable

from local_helpers import OUTLIVE, Project, wait_for


def _closed(p: Project, *args: str, close: str = ">&-") -> subprocess.CompletedProcess[str]:
    line = f"exec {shlex.quote(OUTLIVE)} {' '.join(shlex.quote(a) for a in args)} {close}"
    return subprocess.run(
        ["sh", "-c", line],
        cwd=p.dir,
        env=p.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _daemons(p: Project) -> list[object]:
    return list(json.loads(p.cli("daemon", "status", "--json").stdout)["daemons"])


def test_a_closed_stdout_is_output_discarded_not_a_traceback(
    make_project: Callable[..., Project],
) -> None:
    p = make_project()
    p.env["OUTLIVE_NO_DAEMON"] = "1"
    launched = _closed(p, "run", "--name", "quiet", "--", "echo", "from-the-job")
    assert launched.returncode == 0, launched.stderr
    assert "Traceback" not in launched.stderr
    runs = json.loads(p.cli("ls", "--json").stdout)["runs"]
    assert [r["name"] for r in runs] == ["quiet"]
    run_id = runs[0]["run_id"]
    p.wait_ended(run_id)
    for args, close in (
        (("status", "--json"), ">&-"),
        (("status",), ">&- 2>&-"),
        (("logs", "quiet"), ">&- <&-"),
        (("ls", "--json"), ">&-"),
    ):
        done = _closed(p, *args, close=close)
        assert (done.returncode, done.stderr) == (0, ""), (args, done.stderr)
    assert "from-the-job" in p.cli("logs", "quiet").stdout
    del p.env["OUTLIVE_NO_DAEMON"]
    p.cli("status", "--json")  # starts the daemon
    wait_for(lambda: _daemons(p), "the daemon to start")
    served = _closed(p, "status", "--json")
    assert (served.returncode, served.stderr) == (0, "")
    assert p.status_cli(run_id)["state"] == "succeeded"
