"""A look at several targets while one target's link is cut: the other targets' rows are fresh
and right, the cut target's runs are reported unreachable (last seen, never dead), and the runs
that already ended are still shown as they ended, from the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlive.testing import Box, TestbedUnavailable, check_prerequisites

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


@pytest.fixture(scope="module")
def cut_box() -> Iterator[Box]:
    """A second box of this session's own, the one whose link the test cuts."""
    try:
        check_prerequisites()
    except TestbedUnavailable as e:
        pytest.skip(str(e))
    b = Box.up(f"tc{os.getpid()}x")
    try:
        yield b
    finally:
        b.down()


def cli(proj: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [OUTLIVE, *args], cwd=proj, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


@pytest.mark.parametrize("daemon", ["daemon", "no-daemon"])
def test_a_cut_target_is_reported_unreachable_and_the_others_answer(
    tmp_path: Path, box: Box, cut_box: Box, tag: str, daemon: str
) -> None:
    lines = []
    for name, b in (("ok1", box), ("ok2", box), ("far", cut_box)):
        target = dict(b.target, workdir=str(b.workdir / tag / name))
        target["durable"] = str(b.durable / tag / name)
        lines.append(f"[targets.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    if daemon == "no-daemon":
        env["OUTLIVE_NO_DAEMON"] = "1"
    runs: dict[str, dict[str, str]] = {}
    for target in ("ok1", "ok2", "far"):
        runs[target] = {
            "live": cli(proj, "run", "-t", target, "--json", "--", "sleep", "300", env=env)[
                "run_id"
            ],
            "done": cli(
                proj, "run", "-t", target, "--json", "--name", "done", "--", "true", env=env
            )["run_id"],
        }
    try:
        rows = _wait_all_seen(proj, env, runs)
        cut_box.cut()
        rows = {r["run_id"]: r for r in cli(proj, "status", "--json", env=env)["runs"]}
    finally:
        cut_box.restore()
        for ids in runs.values():
            subprocess.run([OUTLIVE, "cancel", ids["live"]], cwd=proj, capture_output=True)
    for target, ids in runs.items():
        live, done = rows[ids["live"]], rows[ids["done"]]
        assert live["target"] == target and done["target"] == target
        assert done["state"] == "succeeded" and done["exit_code"] == 0
        assert not done.get("stale")  # an ended run's exit record is final
        assert live["state"] == "running"  # last seen, never reported as dead
        if target == "far":
            assert live.get("stale") is True
            assert "far" in live["unreachable"]  # one sentence naming the target
        else:
            assert not live.get("stale")
            assert live["pid"] is not None


def _wait_all_seen(
    proj: Path, env: dict[str, str], runs: dict[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """Look until every `true` run is seen ended, so the registry holds its exit."""
    from outlive.testing import wait_until

    def look() -> dict[str, dict[str, Any]] | None:
        rows = {r["run_id"]: r for r in cli(proj, "status", "--json", env=env)["runs"]}
        ended = all(rows[ids["done"]]["state"] == "succeeded" for ids in runs.values())
        return rows if ended else None

    return wait_until(look, "the short runs to end", interval_s=0.2)
