"""A run page's curves are read from the box as soon as the page itself is asked for (before
its first script's worker asks): the page's request for them then takes that read instead of
reading again. Nothing is read for a run whose page nobody asked for."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator

import pytest
from ui_helpers import UiProject

from outlive.testing import wait_until
from outlive.ui.server import UiServer

STEPS = 300


@pytest.fixture
def server(ui_project: UiProject) -> Iterator[UiServer]:
    srv = UiServer(ui_project.dir)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(srv: UiServer, path: str) -> tuple[int, bytes]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), port, timeout=60)
    token = srv.guard.url("/").split("token=", 1)[1]
    conn.request("GET", path, headers={"Cookie": f"outlive_ui={token}"})
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    return reply.status, body


def test_the_run_page_request_reads_the_curves_its_worker_then_takes(
    ui_project: UiProject, server: UiServer
) -> None:
    run_id = ui_project.launch("prefetched", steps=STEPS)
    other = ui_project.launch("never-opened", steps=STEPS)
    ui_project.finish("prefetched")
    ui_project.finish("never-opened")
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    wait_until(lambda: (run_dir / "exit.json").exists(), "the run to end", 60)
    view = server.view
    status, html = _get(server, f"/run/{run_id}")
    # the page's first script: a worker that asks for the curves (static/runfirst.js)
    assert status == 200 and b'<script src="/static/runfirst.js"></script>' in html

    def read_whole() -> bool:
        lines = view._progress.get(run_id)
        return lines is not None and lines.complete

    wait_until(read_whole, "the page's request to read the progress file", 60)
    assert other not in view._progress  # no page asked for it: nothing read
    # the file is gone from the box: what the curves get is the read the page request made
    (run_dir / "progress.jsonl").rename(run_dir / "moved.jsonl")
    status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
    assert status == 200
    hlen = int.from_bytes(body[:4], "little")
    head = json.loads(body[4 : 4 + hlen])
    assert head["format"] == "lines" and head["complete"] is True
    steps = [json.loads(line)["step"] for line in body[4 + hlen :].splitlines()]
    assert steps == list(range(STEPS))
    assert body[4 + hlen :] == (run_dir / "moved.jsonl").read_bytes()
    # parsed here once sent: a later open preloads the columns, and starts no worker
    wait_until(lambda: view.has_columns(run_id), "the lines sent parsed into columns", 60)
    status, html = _get(server, f"/run/{run_id}")
    preload = f'<link rel="preload" href="/api/run/{run_id}/progress?since=0" as="fetch"'
    assert status == 200 and preload.encode() in html and b"runfirst.js" not in html


def test_a_first_read_that_comes_while_the_page_request_reads_takes_that_read(
    ui_project: UiProject, server: UiServer
) -> None:
    run_id = ui_project.launch("at-once", steps=STEPS)
    ui_project.finish("at-once")
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    wait_until(lambda: (run_dir / "exit.json").exists(), "the run to end", 60)
    for _ in range(3):  # the page and its first read, back to back, as a browser sends them
        _get(server, f"/run/{run_id}")
        status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
        assert status == 200
        hlen = int.from_bytes(body[:4], "little")
        assert body[4 + hlen :] == (run_dir / "progress.jsonl").read_bytes()


def test_a_progress_file_replaced_by_a_shorter_one_is_read_again_from_its_start(
    ui_project: UiProject, server: UiServer
) -> None:
    run_id = ui_project.launch("replaced", steps=50)  # runs on until finish()
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    path = run_dir / "progress.jsonl"

    def written() -> bool:
        return path.exists() and len(path.read_bytes().splitlines()) == 50

    wait_until(written, "the job's 50 records", 60)
    status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
    hlen = int.from_bytes(body[:4], "little")
    assert status == 200 and body[4 + hlen :] == path.read_bytes()
    new = b"".join(json.dumps({"step": 1000 + i, "loss": 0.5}).encode() + b"\n" for i in range(3))
    tmp = run_dir / "progress.new"
    tmp.write_bytes(new)
    tmp.replace(path)
    status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
    hlen = int.from_bytes(body[:4], "little")
    assert status == 200 and body[4 + hlen :] == new
    ui_project.finish("replaced")
