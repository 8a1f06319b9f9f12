"""`status` prices the targets that name their pod (rate now from the API, RunPod's billing
records, rate × time per run) and lists the profile's danger clocks as warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudfake import control, doc, outlive, project

from outlive.cloud.spend import spend
from outlive.config import load_config
from outlive.run_status import RunStatus
from outlive.testing import runpod_fake as F
from outlive.wire import State


def _project(root: Path) -> Path:
    return project(root, target="a100", profile="runpod", cloud_id=F.TRAIN_POD,
                   run_state="running")  # fmt: skip


def test_status_json_adds_what_the_target_bills_and_its_danger_clocks(
    runpod: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTLIVE_NO_DAEMON", "1")
    proj = _project(tmp_path / "p")
    control(runpod, "advance", {"s": 7200})
    looked = doc(outlive(proj, "status", "--json"))
    assert [r["run_id"] for r in looked["runs"]] == ["r1"]
    money = looked["targets"]["a100"]
    listed = doc(outlive(proj, "cloud", "ls", "--json"))["items"]
    tied = sum(i["usd_per_hour"] for i in listed if F.TRAIN_POD in (i["id"], i["attached_to"]))
    assert money["usd_per_hour"] == pytest.approx(tied, abs=1e-5)
    assert (money["state"], money["rate_complete"], money["error"]) == ("RUNNING", True, None)
    assert money["billed_usd"] >= 2 * F.pod_usd_per_hour(F.SEED_PODS[0]) * 0.99
    clocks = {w["clock"]: w["gotchas"] for w in money["warnings"]}
    assert clocks["stopped pod still bills"] == ["RP4", "RP1"] and clocks["low balance"] == ["RP8"]


def test_a_runs_cost_is_the_rate_now_times_its_time(
    runpod: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_project(tmp_path / "p"))
    cfg = load_config()
    done = RunStatus(run_id="r1", name="a", target="a100", state=State.SUCCEEDED,
                     started_at=1000.0, ended_at=1000.0 + 2 * 3600)  # fmt: skip
    going = RunStatus(run_id="r2", name="b", target="a100", state=State.RUNNING,
                      started_at=5000.0)  # fmt: skip
    row = spend(cfg, [done, going], now=5000.0 + 1800)["a100"]
    rate = row["usd_per_hour"]
    assert row["runs_usd"] == {"r1": round(2 * rate, 4), "r2": round(0.5 * rate, 4)}


def test_status_of_a_project_without_cloud_ids_is_unchanged(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "outlive.toml").write_text('[targets.box]\nprofile = "runpod"\nhost = "h"\n')
    assert doc(outlive(proj, "status", "--json")) == {"runs": []}
