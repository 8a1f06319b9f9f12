"""A hostile argument sweep through the tools: odd names, paths with '..' or absolute, shell
metacharacters, huge values, wrong types, unknown targets, secrets in a command. Each is one
sentence (a tool error, no structured output) and nothing runs, moves or is written. A run
name made of shell syntax is accepted, as the CLI accepts it, and no shell ever runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_client import Agent, drive

PWN = "$(touch PWNED); touch PWNED2 `touch PWNED3`"

CASES: list[tuple[str, dict[str, Any], str]] = [
    # (tool, arguments, a word the sentence must hold)
    ("run", {"command": ["true"], "target": "nope"}, "nope"),
    ("run", {"command": ["true"], "target": "../etc"}, "etc"),
    ("run", {"command": ["true"], "target": "box\n; rm -rf /"}, "control character"),
    ("run", {"command": ["true"], "name": "a/../b"}, "name"),
    ("run", {"command": ["true"], "name": "n" * 5000}, "name"),
    ("run", {"command": []}, "command"),
    ("run", {"command": "touch PWNED"}, "command"),
    ("run", {"command": ["true"] * 300}, "command"),
    ("run", {"command": ["python", "train.py", "HF_TOKEN=hf_abcdef"]}, "secret push"),
    ("run", {"command": ["python", "--api-key=sk-123"]}, "secret"),
    ("run", {"command": ["sh", "-c", "touch PWNED\x00"]}, "NUL"),
    ("up", {"target": "nope; touch PWNED"}, "nope"),
    ("status", {"runs": [PWN]}, "touch"),
    ("status", {"runs": ["x"] * 2000}, "runs"),
    ("logs", {"run": "../../etc/passwd"}, "passwd"),
    ("logs", {"run": "x", "lines": -1}, "lines"),
    ("logs", {"run": "x", "lines": 10**12}, "lines"),
    ("logs", {"run": "x", "lines": "ten"}, "lines"),
    ("explain", {}, "exactly one"),
    ("explain", {"run": "x", "text": "y"}, "exactly one"),
    ("explain", {"file": "../../../../etc/passwd"}, ".."),
    ("explain", {"file": "/etc/passwd"}, "absolute"),
    ("explain", {"file": "~/.ssh/id_rsa"}, "absolute"),
    ("doctor", {"run": PWN}, "touch"),
    ("pull", {"run": "x", "to": "../outside"}, ".."),
    ("pull", {"run": "x", "to": "/tmp/outside"}, "absolute"),
    ("pull", {"run": "x", "outputs": ["../../etc"]}, ".."),
    ("pull", {"run": "x", "timeout_s": 1e12}, "timeout_s"),
    ("pull", {"run": "nope"}, "nope"),
    ("verify", {"dir": "/etc"}, "absolute"),
    ("verify", {"dir": "a/../../.."}, ".."),
    ("profiles", {"name": "../../etc/passwd"}, "passwd"),
    ("down", {"target": "nope"}, "nope"),
    ("down", {"target": "local"}, "local"),
    ("down", {"target": "local", "token": "t" * 10_000}, "token"),
    ("down", {"target": "local", "execute": True}, "no provider API"),
    ("down", {"target": "local", "execute": "yes please"}, "execute"),
    ("sweep_status", {"sweep": "../../etc/passwd"}, ".."),
    ("sweep_status", {"sweep": "/etc/passwd"}, "absolute"),
    ("sweep_status", {"sweep": "nope"}, "no sweep"),
    ("sweep_status", {"by": "loss\n; rm -rf /"}, "control character"),
    ("no-such-tool", {}, "no-such-tool"),
]


def test_hostile_arguments_are_one_sentence_and_nothing_runs(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "outlive.toml").write_text('[project]\nname = "hostile"\n')
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    seen: list[str] = []

    async def scenario(agent: Agent) -> None:
        for tool, args, word in CASES:
            sentence = await agent.refused(tool, args)
            assert word.lower() in sentence.lower(), (tool, args, sentence)
            assert "hf_abcdef" not in sentence and "sk-123" not in sentence  # never echoed
            seen.append(sentence)
        assert (await agent.call("status"))["runs"] == []
        # a name full of shell syntax is a name like any other (the CLI's rule): the run
        # starts, and no shell ever reads the name
        run = await agent.call("run", {"command": ["true"], "name": PWN})
        assert run["warnings"] == []
        done = await agent.poll(
            "status", {"runs": [run["run_id"]]},
            lambda d: d["runs"][0]["state"] not in ("pending", "running"),
        )  # fmt: skip
        assert done["runs"][0]["name"] == PWN and done["runs"][0]["state"] == "succeeded"

    drive(project, scenario)
    assert len(seen) == len(CASES)
    assert not list(tmp_path.rglob("PWNED*")) and not (tmp_path / "outside").exists()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    made = [p for p in after if p not in before and p.parts[:2] != ("proj", ".outlive")]
    assert made in ([], [Path("mcp-server.log")]), made
