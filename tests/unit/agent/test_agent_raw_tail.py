"""``tail`` asked with ``raw``: the file's bytes come unencoded after the reply's JSON header,
one-shot and on a kept channel, exactly as on disk (any byte value, several megabytes, across
the pipe's chunks), the channel stays in step for the next request, and an agent that predates
``raw`` (it answers ``data_b64``) is read as before."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from outlive import wire
from outlive.agent import channel
from outlive.agent.client import AgentClient
from outlive.backends.process import ProcessBackend
from outlive.config import Connection, JobPolicy, Placement, Target
from outlive.errors import TransportError

# every byte value, newlines and bytes that are not UTF-8 among them, and a size that spans
# many reads of the pipe
PAYLOAD = bytes(range(256)) * 12_000 + b"\n" + os.urandom(100_003)

# An agent of before ``raw``: a one-shot ``tail`` and a ``serve`` loop that answer data_b64
# whatever the request asks (it reads only run_dir and offset), as the agent did.
OLD_AGENT = """\
import base64, json, os, sys

def tail(req):
    path = os.path.join(req["run_dir"], "progress.jsonl")
    with open(path, "rb") as f:
        f.seek(int(req.get("offset") or 0))
        data = f.read()
    size = os.path.getsize(path)
    return {"ok": True, "result": {"data_b64": base64.b64encode(data).decode(), "offset": size,
                                   "size": size, "ended": True}}

def main(argv):
    if argv[1] == "serve":
        sys.stdout.write(json.dumps({"ok": True, "serve": 1}) + "\\n")
        sys.stdout.flush()
        for line in sys.stdin:
            sys.stdout.write(json.dumps(tail(json.loads(line)["request"])) + "\\n")
            sys.stdout.flush()
        return 0
    sys.stdout.write(json.dumps(tail(json.loads(sys.stdin.read()))))
    return 0
"""


def _backend(agent: AgentClient) -> ProcessBackend:
    target = Target(
        name="local",
        profile="local",
        kind="local",
        backend="process",
        connection=Connection(transport="local"),
        placement=Placement(workdir="/w", durable="/w/.outlive/durable"),
        policy=JobPolicy(),
    )
    return ProcessBackend(target, agent)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / wire.PROGRESS_JSONL).write_bytes(PAYLOAD)
    return run


def _tail_both_ways(backend: ProcessBackend, run_dir: Path) -> None:
    whole = backend.tail(str(run_dir), offset=0, max_bytes=16 << 20, file=wire.PROGRESS_JSONL)
    assert whole.data == PAYLOAD and whole.offset == whole.size == len(PAYLOAD)
    rest = backend.tail(str(run_dir), offset=len(PAYLOAD) - 5, file=wire.PROGRESS_JSONL)
    assert rest.data == PAYLOAD[-5:] and rest.offset == len(PAYLOAD)


def test_raw_tail_one_shot_gives_the_exact_bytes_after_a_json_header(
    tmp_path: Path, run_dir: Path
) -> None:
    agent = AgentClient.local(tmp_path / "state")
    req = {"run_dir": str(run_dir), "offset": 0, "max_bytes": 16 << 20, "file": "progress.jsonl"}
    asked = json.dumps(dict(req, raw=True)).encode()
    done = agent.transport.run(agent._agent_argv("tail"), stdin=asked)
    head, newline, rest = done.stdout.partition(b"\n")
    assert newline and rest == PAYLOAD  # not base64, not inside the JSON
    assert json.loads(head)["raw"] == len(PAYLOAD)
    assert "data" not in json.loads(head)["result"]
    plain = agent.call("tail", req)  # not asked for raw: the JSON document of before
    assert base64.b64decode(plain["data_b64"]) == PAYLOAD
    assert agent.call("tail", dict(req, raw=True))["data"] == PAYLOAD
    _tail_both_ways(_backend(agent), run_dir)


def test_raw_tail_on_a_kept_channel_stays_in_step_with_the_next_requests(
    tmp_path: Path, run_dir: Path
) -> None:
    pool = channel.ChannelPool()
    try:
        agent = AgentClient.local(tmp_path / "state", pool=pool)
        _tail_both_ways(_backend(agent), run_dir)
        _tail_both_ways(_backend(agent), run_dir)
        empty = _backend(agent).tail(str(tmp_path / "no-run"), file=wire.PROGRESS_JSONL)
        assert empty.data == b"" and empty.size == 0
        probe = agent.call("probe", {"run_dirs": [str(run_dir)]})  # a JSON reply after bytes
        assert probe["runs"][0]["run_dir"] == str(run_dir)
        assert len(pool) == 1  # all of it on the one channel
    finally:
        pool.close()


def test_an_agent_that_predates_raw_is_read_as_before(tmp_path: Path, run_dir: Path) -> None:
    old = _fake_agent(tmp_path / "old-agent", OLD_AGENT)
    one_shot = AgentClient(AgentClient.local(tmp_path / "state").transport, local_dir=old)
    whole = _backend(one_shot).tail(str(run_dir), offset=0, file=wire.PROGRESS_JSONL)
    assert whole.data == PAYLOAD
    pool = channel.ChannelPool()
    try:
        kept = AgentClient(one_shot.transport, local_dir=old, pool=pool)
        for _ in range(2):
            chunk = _backend(kept).tail(str(run_dir), offset=7, file=wire.PROGRESS_JSONL)
            assert chunk.data == PAYLOAD[7:]
        assert len(pool) == 1
    finally:
        pool.close()


def test_a_header_that_counts_more_bytes_than_came_is_no_answer(tmp_path: Path) -> None:
    short = _fake_agent(
        tmp_path / "short-agent",
        "import sys\n"
        "def main(argv):\n"
        '    sys.stdout.write(\'{"ok": true, "result": {}, "raw": 10}\\nabc\')\n'
        "    return 0\n",
    )
    agent = AgentClient(AgentClient.local(tmp_path / "state").transport, local_dir=short)
    with pytest.raises(TransportError, match="gave no answer to 'tail'"):
        agent.call("tail", {"run_dir": "/x", "raw": True})
    bad_count = "echo '{\"serve\": 1}'; read a; echo '{\"raw\": -1}'"
    ch = channel.AgentChannel(["sh", "-c", bad_count], "b")
    assert ch.start(10.0)
    with pytest.raises(TransportError, match="bad byte count"):
        ch.request("tail", {}, 10.0)
    ch.close()


def test_a_streamed_tail_gives_the_bytes_in_pieces_as_they_come(
    tmp_path: Path, run_dir: Path
) -> None:
    agent = AgentClient.local(tmp_path / "state")
    req = {"run_dir": str(run_dir), "offset": 0, "max_bytes": 16 << 20, "file": "progress.jsonl"}
    result, pieces = agent.call_streamed("tail", req, timeout_s=60)
    assert result["offset"] == result["size"] == len(PAYLOAD) and "data" not in result
    got = list(pieces)
    assert b"".join(got) == PAYLOAD and len(got) > 1  # read as it came, not at the end
    # an agent that predates raw: its result holds the bytes, none follow it
    old = _fake_agent(tmp_path / "old-agent", OLD_AGENT)
    older = AgentClient(agent.transport, local_dir=old)
    result, pieces = older.call_streamed("tail", req, timeout_s=60)
    assert base64.b64decode(result["data_b64"]) == PAYLOAD and list(pieces) == []
    # a kept channel: its reply whole, as one piece
    pool = channel.ChannelPool()
    try:
        pooled = AgentClient.local(tmp_path / "state", pool=pool)
        result, pieces = pooled.call_streamed("tail", req, timeout_s=60)
        assert b"".join(pieces) == PAYLOAD and result["offset"] == len(PAYLOAD)
    finally:
        pool.close()


def test_a_streamed_reply_that_ends_early_is_an_error_not_short_data(tmp_path: Path) -> None:
    short = _fake_agent(
        tmp_path / "short-agent",
        "import sys\n"
        "def main(argv):\n"
        '    sys.stdout.write(\'{"ok": true, "result": {"offset": 10}, "raw": 10}\\nabc\')\n'
        "    return 0\n",
    )
    agent = AgentClient(AgentClient.local(tmp_path / "state").transport, local_dir=short)
    result, pieces = agent.call_streamed("tail", {"run_dir": "/x"}, timeout_s=60)
    assert result == {"offset": 10}
    with pytest.raises(TransportError, match="ended early"):
        list(pieces)


def _fake_agent(root: Path, main_src: str) -> Path:
    """An agent bundle directory whose ``box.main`` is ``main_src`` (an older or broken agent)."""
    (root / "box").mkdir(parents=True)
    (root / "box" / "__init__.py").write_text("")
    (root / "box" / "main.py").write_text(main_src)
    return root
