"""The Paperspace fake and client against the documented API v1 shapes (paging with after/limit,
errors, public IPs; tests/contracts/paperspace-v1.schema.json), and `cloud audit` / `down
--execute` on Paperspace targets (seed 001 §5: PS1, PS9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudfake import cloud, control, doc, fake_log, kinds, mutations, outlive, project
from paperspace_check import problems

from outlive.cloud.http import JsonApi
from outlive.cloud.paperspace import Paperspace
from outlive.errors import ProviderAuthError
from outlive.testing import paperspace_fake as P

TARGET = "ps"


def _client(page_limit: int = 120) -> Paperspace:
    ps = Paperspace.from_env()
    if ps is None:
        raise AssertionError("the fixture exported no Paperspace key")
    ps.api.sleep = lambda s: None
    ps.page_limit = page_limit
    return ps


def _project(root: Path, run_state: str | None = None) -> Path:
    return project(root, target=TARGET, profile="paperspace-core", cloud_id=P.WORKER,
                   run_state=run_state)  # fmt: skip


def test_every_exchange_validates_and_paging_reads_every_page(paperspace: dict[str, str]) -> None:
    whole = {(r.kind, r.id) for r in _client().inventory()}
    control(paperspace, "ratelimit", {"next": 1, "retry_after_s": 0}, kind="paperspace")
    paged = {(r.kind, r.id) for r in _client(page_limit=1).inventory()}
    assert paged == whole and len(whole) == 11
    ps = _client()
    assert ps.machine("nosuchmach") is None  # 404
    ps.stop(P.IDLE)
    with pytest.raises(ProviderAuthError):
        Paperspace(JsonApi("Paperspace", ps.api.base_url, "wrong", "a test")).machines()
    log = fake_log(paperspace, "paperspace")
    assert {int(str(x["status"])) for x in log} == {200, 401, 404, 429}
    assert any(x["query"].get("after") for x in log)  # the cursor was followed
    for exchange in log:
        assert problems(exchange) == [], exchange


def test_the_checker_rejects_what_the_api_does_not_document() -> None:
    page = {"method": "GET", "path": "/public-ips", "query": {"limit": ["500"]}, "body": None,
            "status": 200, "response_headers": {},
            "response": {"hasMore": False, "items": [{"ip": "1.2.3.4", "region": "mars",
                                                       "dtCreated": "x", "price": 1}]}}  # fmt: skip
    found = problems(page)
    assert "limit '500' is not 1 to 120" in found
    assert any("mars" in p for p in found) and any("price" in p for p in found)
    assert problems({**page, "status": 401, "response": {"message": "no"}, "query": {}}) == [
        "Error: 'code' is a required property"
    ]


def test_audit_finds_every_seeded_paperspace_orphan_and_nothing_else(
    paperspace: dict[str, str], tmp_path: Path
) -> None:
    rep = cloud(_project(tmp_path / "p", run_state="running"), "audit", exit_code=1)
    assert kinds(rep["items"]) == P.SEED_ORPHANS
    why = {(i["kind"], i["id"]): i["why"] for i in rep["items"]}
    assert "PS9" in why[("snapshot", P.OLD_SNAPSHOT)]
    assert "PS1" in why[("volume", P.OFF)] and "PS1" in why[("public-ip", P.FREE_IP)]
    assert "not in the API" in why[("machine", P.IDLE)]
    assert mutations(paperspace, "paperspace") == []


def test_a_machine_with_no_run_behind_it_is_an_orphan_with_its_ip_and_snapshot(
    paperspace: dict[str, str], tmp_path: Path
) -> None:
    rep = cloud(_project(tmp_path / "p"), "audit", exit_code=1)
    assert kinds(rep["items"]) == P.SEED_ORPHANS | P.WORKER_RESOURCES


def test_down_execute_shuts_down_exactly_its_machine_and_says_what_still_bills(
    paperspace: dict[str, str], tmp_path: Path
) -> None:
    proc = outlive(_project(tmp_path / "p"), "down", TARGET, "--confirm", TARGET, "--execute",
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    done = doc(proc)["executed"]
    assert (done["verb"], done["acted"], done["state"], done["meter_stopped"]) == (
        "shut-down", True, "off", True,
    )  # fmt: skip
    # a shut-down stops compute only: storage, the static IP and the snapshot still bill (PS1)
    assert kinds(done["still_billing"]) == P.WORKER_RESOURCES - {("machine", P.WORKER)}
    assert mutations(paperspace, "paperspace") == [("PATCH", f"/machines/{P.WORKER}/stop")]
    state = control(paperspace, "state", kind="paperspace")
    assert isinstance(state, dict)
    assert state["machines"] == {P.WORKER: "off", P.IDLE: "ready", P.OFF: "off"}
    again = outlive(tmp_path / "p", "down", TARGET, "--confirm", TARGET, "--execute", "--json")
    assert again.returncode == 0 and doc(again)["executed"]["acted"] is False
    assert len(mutations(paperspace, "paperspace")) == 1
