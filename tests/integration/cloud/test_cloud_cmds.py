"""`outlive cloud ls|audit` and `outlive down --execute` against the RunPod fake: the audit finds
every seeded orphan and nothing else, `down --execute` stops the meter of exactly its target
after the gate and the typed name, and an execute cut off between the stop and its confirmation
is safe to repeat."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cloudfake import OUTLIVE, cloud, control, doc, kinds, mutations, outlive, project

from outlive.testing import runpod_fake as F

TARGET = "a100"


def _project(root: Path, *, run_state: str | None = None) -> Path:
    return project(root, target=TARGET, profile="runpod", cloud_id=F.TRAIN_POD,
                   run_state=run_state)  # fmt: skip


def test_audit_finds_every_seeded_orphan_and_nothing_else(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    rep = cloud(_project(tmp_path / "p", run_state="running"), "audit", exit_code=1)
    assert kinds(rep["items"]) == F.SEED_ORPHANS
    assert list(rep["items"][0]) == [
        "provider",
        "kind",
        "id",
        "name",
        "state",
        "usd_per_hour",
        "why",
    ]
    rates = [i["usd_per_hour"] for i in rep["items"]]
    assert rates == sorted(rates, reverse=True)
    assert rep["usd_per_month"] == pytest.approx(sum(rates) * 730, abs=0.01)
    why = {(i["kind"], i["id"]): i["why"] for i in rep["items"]}
    assert "2×" in why[("volume", F.STOPPED_POD)] and "RP4" in why[("volume", F.STOPPED_POD)]
    assert why[("pod", F.IDLE_POD)].startswith("idle running pod")
    assert why[("network-volume", F.ORPHAN_VOLUME)].startswith("detached")
    assert mutations(runpod) == []  # the audit only looks


def test_an_ended_run_not_yet_pulled_still_holds_its_pod(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    proj = _project(tmp_path / "p", run_state="succeeded")
    assert kinds(doc(outlive(proj, "cloud", "audit", "--json"))["items"]) == F.SEED_ORPHANS


def test_a_pod_with_no_run_behind_it_is_an_orphan_with_its_disks(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    proj = _project(tmp_path / "p")
    items = doc(outlive(proj, "cloud", "audit", "--json"))["items"]
    assert kinds(items) == F.SEED_ORPHANS | F.TRAIN_POD_RESOURCES


def test_audit_exits_0_when_nothing_is_orphaned(runpod: dict[str, str], tmp_path: Path) -> None:
    from outlive.cloud.runpod import RunPod

    proj = _project(tmp_path / "p", run_state="running")
    rp = RunPod.from_env()
    assert rp is not None
    # the user cleans up through the API: both orphaned pods, then the detached volume
    for pod in (F.IDLE_POD, F.STOPPED_POD):
        rp.terminate(pod)
    rp.api.call("DELETE", f"/networkvolumes/{F.ORPHAN_VOLUME}", ok=(204,))
    proc = outlive(proj, "cloud", "audit", "--json")
    assert (proc.returncode, doc(proc)) == (0, {"items": [], "usd_per_month": 0.0})


def test_ls_lists_every_resource_with_the_target_that_uses_it(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    items = cloud(_project(tmp_path / "p", run_state="running"), "ls", exit_code=0)["items"]
    stopped = {("pod", F.SPOT_POD), ("pod", F.STOPPED_POD)}  # listed at $0/h: not orphans
    assert kinds(items) == F.SEED_ORPHANS | F.TRAIN_POD_RESOURCES | stopped
    used = {(i["kind"], i["id"]): i["used_by"] for i in items}
    assert used[("pod", F.TRAIN_POD)] == [TARGET]
    assert used[("network-volume", F.DURABLE_VOLUME)] == [TARGET]
    assert used[("pod", F.IDLE_POD)] == []
    spot = next(i for i in items if i["id"] == F.SPOT_POD)
    assert (spot["state"], spot["usd_per_hour"], spot["why"]) == ("EXITED", 0.0, None)


def test_without_a_key_cloud_ls_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    proc = outlive(proj, "cloud", "ls", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "RUNPOD_API_KEY" in proc.stderr


def test_down_execute_terminates_exactly_its_target(runpod: dict[str, str], tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    proc = outlive(proj, "down", TARGET, "--confirm", TARGET, "--execute", "--json")
    assert proc.returncode == 0, proc.stderr
    done = doc(proc)["executed"]
    assert (done["verb"], done["acted"], done["meter_stopped"]) == ("terminate", True, True)
    assert done["state_before"] == "RUNNING" and done["state"] is None
    # the network volume survives terminate and keeps billing (RP3): said, not touched
    assert kinds(done["still_billing"]) == {("network-volume", F.DURABLE_VOLUME)}
    assert mutations(runpod) == [("DELETE", f"/pods/{F.TRAIN_POD}")]
    state = control(runpod, "state")
    assert isinstance(state, dict)
    assert state["pods"] == {F.TRAIN_POD: "TERMINATED", F.IDLE_POD: "RUNNING",
                             F.STOPPED_POD: "EXITED", F.SPOT_POD: "EXITED"}  # fmt: skip
    assert state["volumes"] == sorted([F.DURABLE_VOLUME, F.ORPHAN_VOLUME])


@pytest.mark.parametrize("typed", [None, "a10O"])
def test_down_execute_without_the_typed_name_touches_nothing(
    runpod: dict[str, str], tmp_path: Path, typed: str | None
) -> None:
    proj = _project(tmp_path / "p")
    confirm = [] if typed is None else ["--confirm", typed]
    proc = outlive(proj, "down", TARGET, *confirm, "--execute", "--json")
    assert proc.returncode == 1
    assert doc(proc)["allowed"] is False and doc(proc)["executed"] is None
    assert mutations(runpod) == []


def test_down_execute_refused_by_the_gate_touches_nothing(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    proj = _project(tmp_path / "p", run_state="running")
    proc = outlive(proj, "down", TARGET, "--confirm", TARGET, "--execute", "--json")
    assert proc.returncode == 1
    assert doc(proc)["refused"] and doc(proc)["executed"] is None
    assert mutations(runpod) == []


def test_down_execute_without_a_cloud_id_is_one_sentence(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "outlive.toml").write_text('[targets.a100]\nprofile = "runpod"\nhost = "h"\n')
    proc = outlive(proj, "down", TARGET, "--confirm", TARGET, "--execute")
    assert proc.returncode == 2 and "cloud_id" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert mutations(runpod) == []


def test_an_execute_cut_off_between_stop_and_confirm_is_safe_to_repeat(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    proj = _project(tmp_path / "p")
    pod_path = f"/v1/pods/{F.TRAIN_POD}"
    control(runpod, "hang", {"method": "GET", "path": pod_path, "after": "DELETE"})
    first = subprocess.Popen(
        [OUTLIVE, "down", TARGET, "--confirm", TARGET, "--execute", "--json"], cwd=proj,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while fake_hanging(runpod) == 0:  # the terminate went out; its confirmation hangs
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)  # the client dies before it saw the confirmation
    finally:
        first.wait(timeout=60)
        first.stdout.close()  # type: ignore[union-attr]
        first.stderr.close()  # type: ignore[union-attr]
        control(runpod, "release")
    again = outlive(proj, "down", TARGET, "--confirm", TARGET, "--execute", "--json")
    assert again.returncode == 0, again.stderr
    done = doc(again)["executed"]
    assert (done["acted"], done["meter_stopped"], done["state"]) == (False, True, None)
    assert mutations(runpod) == [("DELETE", f"/pods/{F.TRAIN_POD}")]  # exactly once


def fake_hanging(env: dict[str, str]) -> int:
    log = control(env, "log")
    assert isinstance(log, dict)
    return int(log["hanging"])


def test_down_on_a_pod_the_platform_stopped_says_what_still_bills(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    proj = _project(tmp_path / "p")
    control(runpod, "preempt", {"podId": F.TRAIN_POD})
    seen = doc(outlive(proj, "down", TARGET, "--json"))["cloud"]
    assert seen["state"] == "EXITED"
    billing = {(b["kind"], b["id"]): b for b in seen["still_billing"]}
    assert set(billing) == {("volume", F.TRAIN_POD), ("network-volume", F.DURABLE_VOLUME)}
    assert "2×" in billing[("volume", F.TRAIN_POD)]["bills"]
    human = outlive(proj, "down", TARGET)
    assert "still billing" in human.stdout and "2×" in human.stdout
    assert mutations(runpod) == []


def test_after_a_low_balance_auto_stop_audit_lists_the_volumes_billing_at_twice_the_rate(
    runpod: dict[str, str], tmp_path: Path
) -> None:
    control(runpod, "balance", {"usd": 0})  # RunPod stops every running pod (RP8)
    items = cloud(_project(tmp_path / "p"), "audit", exit_code=1)["items"]
    why = {(i["kind"], i["id"]): i["why"] for i in items}
    for pod in (F.TRAIN_POD, F.IDLE_POD, F.STOPPED_POD):
        assert "2×" in why[("volume", pod)]
        assert ("pod", pod) not in why  # compute stopped billing


def test_a_provider_error_does_not_keep_down_from_showing_the_gate(
    runpod: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "not-the-key")
    proj = _project(tmp_path / "p")
    shown = outlive(proj, "down", TARGET, "--confirm", TARGET, "--json")
    assert shown.returncode == 0 and doc(shown)["allowed"] is True
    assert doc(shown)["cloud"] is None and "401" in shown.stderr
    refused = outlive(proj, "down", TARGET, "--confirm", TARGET, "--execute", "--json")
    assert refused.returncode == 2 and refused.stdout == "" and "401" in refused.stderr
    assert mutations(runpod) == []
