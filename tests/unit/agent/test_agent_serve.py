"""The agent's ``serve`` mode and the persistent channels built on it: one greeting, then one
reply line per request line, read-only verbs only; a channel that dies is reopened, and one that
stops answering is reported as unreachable within the look's timeout."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from outlive.agent import box, channel
from outlive.agent.box import common as box_common
from outlive.agent.box import serve as box_serve
from outlive.agent.client import AgentClient
from outlive.errors import BoxError, Unreachable

BOX = Path(box.__file__).parent  # python runs the package dir (box/__main__.py)


def _serve(lines: list[str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(BOX), "serve"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,  # exits 0 when stdin ends
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_serve_greets_then_answers_each_request_line_in_order(tmp_path: Path) -> None:
    (tmp_path / "log-run").mkdir()
    (tmp_path / "log-run" / "stdout.log").write_bytes(b"one\ntwo\n")
    replies = _serve(
        [
            json.dumps({"verb": "probe", "request": {"run_dirs": [str(tmp_path / "nope")]}}),
            json.dumps({"verb": "tail", "request": {"run_dir": str(tmp_path / "log-run")}}),
        ]
    )
    hello, probe, tail = replies
    assert hello["ok"] and hello["serve"] == box_common.AGENT_VERSION and hello["pid"] > 0
    assert probe["ok"] and probe["result"]["runs"][0]["state"] == "unknown"
    assert tail["ok"] and tail["result"]["offset"] == 8


def test_serve_refuses_verbs_other_than_its_own_and_survives_garbage(tmp_path: Path) -> None:
    # launch is served (the daemon's `run`); this one is refused with the launch's own sentence
    launch = {"verb": "launch", "request": {"run_id": "x", "command": ["true"]}}
    replies = _serve(
        [
            json.dumps(launch),
            "this is not json",
            json.dumps({"verb": "cancel", "request": {"run_dir": str(tmp_path)}}),
            json.dumps({"verb": "probe", "request": "not an object"}),
            json.dumps({"verb": "probe", "request": {"run_dirs": []}}),
        ]
    )
    assert len(replies) == 6
    assert replies[1]["ok"] is False and "run name" in replies[1]["error"]
    for refused in replies[2:4]:
        assert refused["ok"] is False and "serve answers only probe, tail" in refused["error"]
    assert replies[4]["ok"] is False and "JSON object" in replies[4]["error"]
    assert replies[5]["ok"] is True  # still serving after all of that
    assert not list(tmp_path.iterdir())  # nothing was created by the refused verbs


def test_serve_exits_when_idle() -> None:
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        with os.fdopen(out_w, "wb") as out, os.fdopen(r, "rb") as inp:
            assert box_serve.serve(inp, out, idle_s=0.2) == 0  # returns: it does not serve on
        assert json.loads(os.read(out_r, 4096))["serve"] == box_common.AGENT_VERSION
    finally:
        os.close(w)
        os.close(out_r)


@pytest.fixture
def agent(tmp_path: Path) -> AgentClient:
    return AgentClient.local(tmp_path / "state")


def test_pooled_calls_answer_like_one_shot_calls_on_one_open_channel(
    agent: AgentClient, tmp_path: Path
) -> None:
    req = {"run_dirs": [str(tmp_path / "a"), str(tmp_path / "b")]}
    direct = agent.call("probe", req)
    pool = channel.ChannelPool()
    pooled = AgentClient.local(tmp_path / "state", pool=pool)
    try:
        first = pooled.call("probe", req)
        second = pooled.call("probe", req)
        assert len(pool) == 1
    finally:
        pool.close()
    assert len(pool) == 0
    assert [r["state"] for r in first["runs"]] == [r["state"] for r in direct["runs"]]
    assert first["boot_id"] == second["boot_id"] == direct["boot_id"]


def test_a_dead_channel_is_reopened_for_the_next_request(agent: AgentClient) -> None:
    opened: list[channel.AgentChannel] = []

    def opener(timeout_s: float) -> channel.AgentChannel:
        opened.append(agent.open_channel(timeout_s))
        return opened[-1]

    pool = channel.ChannelPool()
    try:
        pool.call(("k",), opener, "probe", {"run_dirs": []}, 10.0)
        opened[0].proc.kill()
        opened[0].proc.wait()
        reply = pool.call(("k",), opener, "probe", {"run_dirs": []}, 10.0)
        assert reply["ok"] is True
        assert len(opened) == 2 and opened[1].proc.pid != opened[0].proc.pid
    finally:
        pool.close()
    assert all(ch.proc.poll() is not None for ch in opened)  # closing the pool ends them


def test_a_channel_that_stops_answering_is_unreachable_within_the_timeout() -> None:
    greet_then_hang = 'echo \'{"ok": true, "serve": 1}\'; exec sleep 60'

    def opener(timeout_s: float) -> channel.AgentChannel:
        ch = channel.AgentChannel(["sh", "-c", greet_then_hang], "hung-box")
        assert ch.start(timeout_s)
        return ch

    pool = channel.ChannelPool()
    t0 = time.monotonic()
    with pytest.raises(Unreachable, match="hung-box: no answer within 1 s"):
        pool.call(("h",), opener, "probe", {}, 1.0)
    assert time.monotonic() - t0 < 10
    assert len(pool) == 0  # the hung channel was closed, the next look opens a fresh one


def test_a_process_that_ends_before_greeting_reports_its_exit_code() -> None:
    ch = channel.AgentChannel(["sh", "-c", "echo no agent here >&2; exit 97"], "bare-box")
    assert ch.start(10.0) is False
    assert ch.returncode == 97
    assert b"no agent here" in ch.stderr()
    ch.close()


def test_agent_errors_come_back_as_box_errors_through_the_pool(tmp_path: Path) -> None:
    pool = channel.ChannelPool()
    try:
        with pytest.raises(BoxError):  # no run_dir: the agent's one-sentence error, not a hang
            AgentClient.local(tmp_path / "state", pool=pool).call("tail", {})
        assert len(pool) == 1
    finally:
        pool.close()


def test_a_launch_is_sent_once_even_when_its_kept_channel_dies_with_the_reply(
    tmp_path: Path,
) -> None:
    """A read-only request lost with its channel is repeated on a new one; a launch never is (the
    box may have started it): the lost reply is the launch's answer."""
    seen = tmp_path / "seen"
    # greets, answers the first request, then reads one more line, records it and dies unanswered
    script = (
        'echo \'{"ok": true, "serve": 1}\'; read a; echo \'{"ok": true, "result": {}}\'; '
        f'read b; echo "$b" >> {shlex.quote(str(seen))}; exit 0'
    )
    opened: list[channel.AgentChannel] = []

    def opener(timeout_s: float) -> channel.AgentChannel:
        opened.append(channel.AgentChannel(["sh", "-c", script], "box"))
        assert opened[-1].start(timeout_s)
        return opened[-1]

    pool = channel.ChannelPool()
    try:
        pool.call(("k",), opener, "probe", {}, 10.0)  # the channel is now a kept one
        with pytest.raises(channel.ChannelClosed):
            pool.call(("k",), opener, "launch", {"run_id": "r1"}, 10.0)
        assert len(opened) == 1  # no second channel, so no second launch
        assert seen.read_text().count('"launch"') == 1
        pool.call(("k",), opener, "probe", {}, 10.0)  # a kept channel ended: reopened first
        assert len(opened) == 2
        pool.call(("k",), opener, "probe", {}, 10.0)
        assert seen.read_text().count('"probe"') == 1  # the lost probe was sent again: harmless
        assert len(opened) == 3
    finally:
        pool.close()


def test_the_agent_stops_hashing_once_its_client_is_gone(tmp_path: Path) -> None:
    """A pull stopped (Ctrl-C) ends its channel; the box's agent, hashing a tree for it, stops
    too (it sees its output's reader gone) instead of hashing on for minutes: here a 256 GiB
    sparse file, which takes SHA-256 over two minutes on any machine this runs on."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "huge.bin", "wb") as f:
        f.truncate(256 << 30)
    proc = subprocess.Popen(
        [sys.executable, str(BOX), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert json.loads(proc.stdout.readline())["serve"]
        roots = [{"label": "ckpt", "path": str(tree)}]
        request = {"verb": "manifest", "request": {"sets": [{"roots": roots, "hash": True}]}}
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        time.sleep(0.5)  # hashing by now
        assert proc.poll() is None
        proc.stdout.close()  # the client is gone
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
