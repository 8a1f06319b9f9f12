"""The daemon under an unlucky setting: ``OUTLIVE_DAEMON_DIR`` given as a relative path (the
daemon runs in ``/``, so each one failed to bind and every look stayed cold and spawned another
that failed)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from local_helpers import Project, wait_for


def _daemons(p: Project) -> list[dict[str, Any]]:
    return list(json.loads(p.cli("daemon", "status", "--json").stdout)["daemons"])


def test_a_relative_socket_directory_is_the_clients_and_serves_looks(
    make_project: Callable[..., Project],
) -> None:
    p = make_project()
    p.env["OUTLIVE_DAEMON_DIR"] = "rel-sockets"  # relative to the project, where outlive runs
    try:
        run_id, go = p.start_waiting("w")
        p.cli("status", "--json")  # starts the daemon
        found = wait_for(lambda: _daemons(p), "the daemon to start")
        assert os.path.dirname(found[0]["socket"]) == str(p.dir / "rel-sockets")
        before = found[0]["served"]
        assert p.status_cli(run_id)["state"] == "running"
        assert _daemons(p)[0]["served"] == before + 1
        go.touch()
    finally:
        p.cli("daemon", "stop", "--json", rc=None)
