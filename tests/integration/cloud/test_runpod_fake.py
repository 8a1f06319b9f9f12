"""The RunPod fake and client against RunPod's published OpenAPI document (REST v1, vendored in
tests/contracts/), and the fake's billing state machine (seed 004 §2/§5: RP3, RP4, RP8)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cloudfake import control, fake_log
from openapi_check import problems

from outlive.cloud.runpod import RunPod
from outlive.errors import ProviderAuthError, ProviderError
from outlive.testing import runpod_fake as F

DOC = "runpod-rest-v1.openapi.json"


def _client(sleeps: list[float] | None = None) -> RunPod:
    rp = RunPod.from_env()
    if rp is None:
        raise AssertionError("the fixture exported no RunPod key")
    if sleeps is not None:
        rp.api.sleep = sleeps.append
    return rp


def _by(rp: RunPod) -> dict[tuple[str, str], float]:
    return {(r.kind, r.id): r.usd_per_hour for r in rp.inventory()}


def test_every_request_and_response_validates_against_the_openapi_document(
    runpod: dict[str, str],
) -> None:
    rp = _client(sleeps=[])
    rp.inventory()
    rp.pod(F.TRAIN_POD)
    rp.billing(F.TRAIN_POD)
    control(runpod, "ratelimit", {"next": 1, "retry_after_s": 0})
    rp.stop(F.IDLE_POD)
    rp.terminate(F.IDLE_POD)
    assert rp.pod(F.IDLE_POD) is None  # 404 once terminated
    with pytest.raises(ProviderError):
        rp.terminate(F.IDLE_POD)  # 400: no such pod any more
    bad = RunPod(rp.api.__class__("RunPod", rp.api.base_url, "wrong", "a test"))
    with pytest.raises(ProviderAuthError):
        bad.pods()
    log = fake_log(runpod)
    statuses = sorted({int(str(x["status"])) for x in log})
    assert statuses == [200, 204, 400, 401, 404, 429]
    for exchange in log:
        assert problems(DOC, exchange) == [], exchange


def test_the_checker_rejects_what_the_document_does_not_allow() -> None:
    good = {
        "method": "GET",
        "path": "/pods",
        "query": {},
        "body": None,
        "status": 200,
        "response_headers": {},
        "response": [{"id": "a", "desiredStatus": "RUNNING"}],
    }
    assert problems(DOC, good) == []
    invented = {**good, "response": [{"id": "a", "usdPerHour": 1.0}]}
    assert any("usdPerHour" in p for p in problems(DOC, invented))
    bad_enum = {**good, "response": [{"id": "a", "desiredStatus": "STOPPED"}]}
    assert any("STOPPED" in p for p in problems(DOC, bad_enum))
    unknown_param = {**good, "query": {"after": ["x"]}}
    assert problems(DOC, unknown_param) == ["query parameter 'after' is not declared"]
    undocumented = {**good, "method": "DELETE", "path": "/pods/a", "status": 200, "response": None}
    assert problems(DOC, undocumented) == ["status 200 is not documented for DELETE /pods/{podId}"]
    no_retry_after = {**good, "status": 429, "response": None}
    assert problems(DOC, no_retry_after) == ["429 without Retry-After"]


def test_a_wrong_key_is_one_sentence_without_the_key(
    runpod: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "sk-not-the-key")
    with pytest.raises(ProviderAuthError) as err:
        _client().inventory()
    message = str(err.value)
    assert "\n" not in message and "sk-not-the-key" not in message
    assert "$RUNPOD_API_KEY" in message and "401" in message


def test_a_key_file_others_can_read_is_refused(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    key = Path(str(tmp_path)) / "runpod.key"
    key.write_text("secret\n")
    key.chmod(0o644)
    monkeypatch.setenv("OUTLIVE_RUNPOD_KEY_FILE", str(key))
    with pytest.raises(ProviderAuthError, match="chmod 600"):
        RunPod.from_env()
    key.chmod(0o600)
    rp = RunPod.from_env()
    assert rp is not None and rp.api.key == "secret" and rp.api.key_hint == str(key)


def test_a_429_is_retried_after_its_retry_after(runpod: dict[str, str]) -> None:
    sleeps: list[float] = []
    control(runpod, "ratelimit", {"next": 2, "retry_after_s": 7})
    assert {p["id"] for p in _client(sleeps).pods()} >= {F.TRAIN_POD}
    assert sleeps == [7.0, 7.0]


def test_rate_limited_past_every_retry_is_one_sentence(runpod: dict[str, str]) -> None:
    control(runpod, "ratelimit", {"next": 50, "retry_after_s": 0})
    with pytest.raises(ProviderError, match="rate-limiting") as err:
        _client(sleeps=[]).pods()
    assert "\n" not in str(err.value)


def test_stop_keeps_the_volume_billing_at_twice_the_rate_and_terminate_deletes_it(
    runpod: dict[str, str],
) -> None:
    rp = _client()
    running = _by(rp)[("volume", F.IDLE_POD)]
    rp.stop(F.IDLE_POD)
    after_stop = _by(rp)
    assert after_stop[("pod", F.IDLE_POD)] == 0.0
    assert after_stop[("volume", F.IDLE_POD)] == pytest.approx(2 * running)  # RP4
    rp.terminate(F.IDLE_POD)
    after = _by(rp)
    assert ("pod", F.IDLE_POD) not in after and ("volume", F.IDLE_POD) not in after  # RP3
    assert rp.compute_state(F.IDLE_POD) is None
    # everything else is as it was
    assert {k for k in after} == {k for k in after_stop if k[1] != F.IDLE_POD}


def test_billing_records_grow_with_the_fakes_clock(runpod: dict[str, str]) -> None:
    rp = _client()
    before = rp.billing(F.TRAIN_POD)[0]
    control(runpod, "advance", {"s": 3600})
    after = rp.billing(F.TRAIN_POD)[0]
    assert after["podId"] == F.TRAIN_POD
    assert after["amount"] - before["amount"] == pytest.approx(
        F.pod_usd_per_hour(F.SEED_PODS[0]), rel=0.01
    )
    assert after["timeBilledMs"] - before["timeBilledMs"] >= 3600 * 1000


def test_low_balance_stops_every_running_pod_and_storage_keeps_billing(
    runpod: dict[str, str],
) -> None:
    rp = _client()
    control(runpod, "balance", {"usd": 0})
    states = {p["id"]: p["desiredStatus"] for p in rp.pods()}
    assert set(states.values()) == {"EXITED"}  # RP8
    assert _by(rp)[("volume", F.TRAIN_POD)] > 0


def test_testbed_up_prints_name_and_env_and_down_removes_it() -> None:
    def cli(*args: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-m", "outlive.testing", "runpod", *args, "--name", "cli", "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        doc: dict[str, object] = json.loads(out.stdout)
        return doc

    doc = cli("up")
    try:
        env = doc["env"]
        assert doc["name"] == "cli" and isinstance(env, dict)
        assert set(env) == {"RUNPOD_API_KEY", "OUTLIVE_RUNPOD_API_URL", "OUTLIVE_RUNPOD_FAKE_URL"}
        assert str(env["OUTLIVE_RUNPOD_API_URL"]).endswith("/v1")
    finally:
        assert cli("down") == {"name": "cli", "ok": True, "existed": True}
    assert cli("down") == {"name": "cli", "ok": True, "existed": False}
