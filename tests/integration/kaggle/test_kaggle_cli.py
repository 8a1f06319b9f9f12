"""``outlive run -t kaggle`` through the real CLI, the real ``kaggle`` client and the Kaggle fake:
a run longer than one version's budget chains versions (status shows them) and ends
bit-identical to an uninterrupted run; bad target values are one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kaggle_project import EXAMPLE, KaggleProject

from outlive.ckpt.core import CKPT_DIR_ENV
from outlive.demo import _same_weights
from outlive.testing import providers, wait_until

STEPS = ["--steps", "120", "--save-every", "5"]
DEADLINE_S = 240.0


def _reference(tmp: Path) -> Path:
    """The same training, uninterrupted, here."""
    ckpt = tmp / "reference"
    subprocess.run(
        [sys.executable, str(EXAMPLE), *STEPS, "--step-sleep-s", "0"], check=True, timeout=120,
        env=dict(os.environ, **{CKPT_DIR_ENV: str(ckpt)}), capture_output=True,
    )  # fmt: skip
    return ckpt / "final.npz"


def test_kaggle_run_chains_versions_then_pulls_verified_bit_identical_through_the_cli(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "config",
                      {"session_limit_s": 120, "grace_s": 5})  # fmt: skip
    project = KaggleProject(tmp_path, kaggle_fake, session_budget_s=2.0, session_margin_s=0)
    run_id = project.run("toy", "python", EXAMPLE.name, *STEPS, "--step-sleep-s", "0.05")
    seen = project.until_ended(run_id, DEADLINE_S)
    last = seen[-1]
    assert last["state"] == "succeeded", last
    versions = last["kaggle"]["versions"]
    assert len(versions) >= 3, versions  # 120 steps of 50 ms cannot fit in two 2 s budgets
    assert [v["outcome"] for v in versions] == ["stopped"] * (len(versions) - 1) + ["succeeded"]
    assert last["restarts"] == len(versions) - 1
    text = project.cli("status", run_id).stdout
    assert f"kaggle version {len(versions)}" in " ".join(text.split())
    logs = project.cli("logs", run_id).stdout
    assert "version ended: succeeded" in logs
    state = providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "state")
    pushed = [v for v in state["versions"] if v["ref"] == last["kaggle"]["ref"]]
    assert len(pushed) == len(versions)
    assert all(v["enable_internet"] is False for v in pushed)  # set explicitly (NB3)

    refused = json.loads(project.cli("down", "kg", "--json", ok=(1, 2, 3, 4, 5)).stdout)
    assert refused["lost_if_abandoned"], refused  # nothing pulled yet: down refuses
    pulled = json.loads(project.cli("pull", "--json", run_id).stdout)
    assert pulled["ok"] and pulled["verified_file"], pulled
    assert Path(pulled["verified_file"]).name == "PULL_VERIFIED.json"
    same, detail = _same_weights(_reference(tmp_path), Path(pulled["dest"]) / "ckpt" / "final.npz")
    assert same, detail
    gate = json.loads(project.cli("down", "kg", "--json", ok=(0, 1, 2, 3, 4, 5)).stdout)
    assert gate["reachable"] and gate["lost_if_abandoned"] == [], gate


def test_kaggle_target_with_a_bad_accelerator_is_one_sentence(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    project = KaggleProject(tmp_path, kaggle_fake, accelerator="h100")
    done = project.cli("run", "-t", "kg", "--", "python", EXAMPLE.name, ok=(2,))
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "accelerator = 'h100' is not one of none, gpu" in lines[0], lines
    assert (
        providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "state")["versions"] == []
    )


def _slow_run(tmp_path: Path, kaggle_fake: dict[str, Any]) -> tuple[KaggleProject, str]:
    """A run whose first version takes about a minute."""
    project = KaggleProject(tmp_path, kaggle_fake, session_budget_s=60.0, session_margin_s=0)
    return project, project.run("toy", "python", EXAMPLE.name, *STEPS, "--step-sleep-s", "0.5")


def test_kaggle_cancel_stops_the_running_version_through_the_api_and_pushes_no_other(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    fake_url = kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"]
    project, run_id = _slow_run(tmp_path, kaggle_fake)
    wait_until(
        lambda: (
            [v["status"] for v in providers.control(fake_url, "state")["versions"]] == ["RUNNING"]
        ),
        "the first version running",
        60,
    )
    said = json.loads(project.cli("cancel", "--json", run_id).stdout)
    assert "version 1 was cancelled through Kaggle's API" in json.dumps(said), said
    last = project.until_ended(run_id, DEADLINE_S)[-1]
    assert last["state"] == "cancelled", last
    assert [v["status"] for v in last["kaggle"]["versions"]] == ["CANCEL_ACKNOWLEDGED"]
    state = providers.control(fake_url, "state")["versions"]
    assert [v["status"] for v in state] == ["CANCEL_ACKNOWLEDGED"]  # no further version
    # a second cancel finds nothing running and says so
    again = json.loads(project.cli("cancel", "--json", run_id).stdout)
    assert "is CANCEL_ACKNOWLEDGED already" in json.dumps(again), again


def test_kaggle_cancel_without_a_usable_sdk_says_where_to_stop_it(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    fake_url = kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"]
    project, run_id = _slow_run(tmp_path, kaggle_fake)
    # a kaggle CLI whose SDK cannot be reached (not a Python console script): the real one, run
    # through a shell wrapper first on the PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kaggle"
    wrapper.write_text(f'#!/bin/sh\nexec {Path(sys.executable).with_name("kaggle")} "$@"\n')
    wrapper.chmod(0o755)
    project.env["PATH"] = f"{bin_dir}{os.pathsep}{project.env['PATH']}"
    done = project.cli("cancel", run_id)
    text = " ".join((done.stdout + done.stderr).split())
    assert "is not a Python console script" in text, text
    assert "stop it at https://www.kaggle.com/code/" in text, text
    state = providers.control(fake_url, "state")["versions"]
    assert len(state) == 1 and state[0]["status"] in ("QUEUED", "RUNNING")
