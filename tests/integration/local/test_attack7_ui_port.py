"""``outlive ui`` on a port it cannot have: one sentence, exit 2, never a traceback (a port in
use crashed in the server's own cleanup; a negative or too large one in the bind)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from local_helpers import Project


def _refused(p: Project, port: int, *must: str) -> None:
    done = p.cli("ui", "--port", str(port), "--no-browser", "--json", rc=2, timeout_s=60)
    err = done.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert done.stdout == ""
    for word in must:
        assert word in err, err


def test_a_port_in_use_is_one_sentence(make_project: Callable[..., Project]) -> None:
    p = make_project()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _refused(p, taken.getsockname()[1], "cannot listen", "--port 0")


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_out_of_range_is_one_sentence(
    make_project: Callable[..., Project], port: int
) -> None:
    _refused(make_project(), port, "not a TCP port", "--port 0")
