"""A run page's curves are read from the box as soon as the page itself is asked for (before
its preload asks): the frames ``progress()`` wrote next to the progress file, or, for an older
run that has none, its lines in the same reply; the page's request for them then takes that read
instead of reading again. Nothing is read for a run whose page nobody asked for."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_helpers import UiProject

from outlive import wire
from outlive.ckpt import ProgressWriter
from outlive.ckpt.frames import covered, decode
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


def _ended(ui_project: UiProject, name: str) -> tuple[str, Path]:
    """Run ``name`` (PROGRESS_JOB, STEPS records) to its end."""
    run_id = ui_project.launch(name, steps=STEPS)
    ui_project.finish(name)
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    wait_until(lambda: (run_dir / "exit.json").exists(), "the run to end", 60)
    return run_id, run_dir


def _framed(body: bytes) -> tuple[dict[str, object], bytes]:
    hlen = int.from_bytes(body[:4], "little")
    return json.loads(body[4 : 4 + hlen]), body[4 + hlen :]


def test_the_run_page_request_reads_the_frames_its_preload_then_takes(
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
    # the page preloads its curves (the page decodes frames itself: no worker)
    preload = f'<link rel="preload" href="/api/run/{run_id}/progress?since=0" as="fetch"'
    assert status == 200 and preload.encode() in html and b"runfirst.js" not in html

    def read_whole() -> bool:
        frames = view._frames.get(run_id)
        return frames is not None and frames.complete

    wait_until(read_whole, "the page's request to read the frames", 60)
    assert other not in view._frames and other not in view._progress  # no page: nothing read
    assert run_id not in view._progress  # the lines were not read
    # the frames are gone from the box: what the curves get is the read the page request made
    (run_dir / wire.PROGRESS_BIN).rename(run_dir / "moved.bin")
    status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
    assert status == 200
    head, data = _framed(body)
    lines_size = (run_dir / wire.PROGRESS_JSONL).stat().st_size
    assert head["format"] == "frames" and head["complete"] is True
    assert head["lines_size"] == lines_size and data == (run_dir / "moved.bin").read_bytes()
    rows = decode(data).rows
    assert covered(rows) == (lines_size, list(range(STEPS)))  # every line has its row
    assert [r[3][0] for r in rows] == list(range(STEPS))


def test_an_older_runs_lines_come_in_the_same_reply_and_later_opens_get_columns(
    ui_project: UiProject, server: UiServer
) -> None:
    run_id, run_dir = _ended(ui_project, "older")
    (run_dir / wire.PROGRESS_BIN).unlink()  # written by a library that wrote no frames
    view = server.view
    _get(server, f"/run/{run_id}")  # the read starts: frames first
    status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
    assert status == 200
    head, data = _framed(body)
    assert head["format"] == "lines" and data == (run_dir / wire.PROGRESS_JSONL).read_bytes()
    assert not view.may_have_frames(run_id)
    # parsed here once sent: a later open preloads the columns, and starts no worker
    wait_until(lambda: view.has_columns(run_id), "the lines sent parsed into columns", 60)
    status, html = _get(server, f"/run/{run_id}")
    preload = f'<link rel="preload" href="/api/run/{run_id}/progress?since=0" as="fetch"'
    assert status == 200 and preload.encode() in html and b"runfirst.js" not in html


def test_a_first_read_that_comes_while_the_page_request_reads_takes_that_read(
    ui_project: UiProject, server: UiServer
) -> None:
    run_id, run_dir = _ended(ui_project, "at-once")
    for _ in range(3):  # the page and its first read, back to back, as a browser sends them
        _get(server, f"/run/{run_id}")
        status, body = _get(server, f"/api/run/{run_id}/progress?since=0")
        assert status == 200
        assert _framed(body)[1] == (run_dir / wire.PROGRESS_BIN).read_bytes()


def test_a_progress_file_replaced_by_a_shorter_one_is_read_again_from_its_start(
    ui_project: UiProject, server: UiServer
) -> None:
    run_id = ui_project.launch("replaced", steps=50)  # runs on until finish()
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    path = run_dir / "progress.jsonl"

    def written() -> bool:
        return path.exists() and len(path.read_bytes().splitlines()) == 50

    wait_until(written, "the job's 50 records", 60)
    frames, lines = (f"/api/run/{run_id}/progress?since=0{q}" for q in ("", "&frames=0"))
    status, body = _get(server, lines)
    assert status == 200 and _framed(body) == (_framed(body)[0], path.read_bytes())
    assert _get(server, frames)[1].endswith((run_dir / wire.PROGRESS_BIN).read_bytes())
    new = b"".join(json.dumps({"step": 1000 + i, "loss": 0.5}).encode() + b"\n" for i in range(3))
    for name, data in ((path, new), (run_dir / wire.PROGRESS_BIN, b"")):
        tmp = run_dir / "replacement"
        tmp.write_bytes(data)
        tmp.replace(name)
    status, body = _get(server, lines)
    assert status == 200 and _framed(body)[1] == new
    writer = ProgressWriter(run_dir / "elsewhere.jsonl")
    writer.write(7, {"loss": 0.25})  # frames of another, shorter file
    writer.close()
    (run_dir / "elsewhere.jsonl.bin").replace(run_dir / wire.PROGRESS_BIN)
    head, data = _framed(_get(server, frames)[1])
    assert head["format"] == "frames" and data == (run_dir / wire.PROGRESS_BIN).read_bytes()
    ui_project.finish("replaced")
