"""``down --json`` keeps its shape: the gate's TypedDicts list their keys in the order the
report prints them, and the report built from a profile has exactly those keys."""

from __future__ import annotations

from typing import Any

import pytest

from outlive.lifecycle import gate as G
from outlive.profiles import load_profile

TEARDOWN_KEYS = [
    "profile",
    "title",
    "meter_stop_verb",
    "meter_stop_irreversible",
    "stop_event",
    "destroy_event",
    "meter_stop",
    "actions",
    "keeps_billing",
    "deletes_irreversibly",
    "clocks",
    "plan",
]
REPORT_KEYS = [
    "target",
    "profile",
    "host",
    "reachable",
    "error",
    "runs",
    "lost_if_abandoned",
    "teardown",
    "allowed",
    "refused",
    "confirmed",
    "abandoned",
    "plan",
    "note",
    "released",
]


def _order(shape: Any) -> list[str]:
    return list(shape.__annotations__)


def test_the_typed_shapes_list_the_printed_keys_in_order() -> None:
    assert _order(G.TeardownFacts) == TEARDOWN_KEYS
    assert _order(G.GateReport) == REPORT_KEYS
    assert _order(G.RunView) == [
        "run_id",
        "name",
        "state",
        "ckpt_dir",
        "files",
        "size_bytes",
        "manifest_sha256",
        "covered",
        "uncovered",
        "pulls",
    ]
    assert _order(G.Lost) == ["path", "box_path", "size_bytes", "why", "runs", "names"]


@pytest.mark.parametrize("name", ["runpod", "paperspace-core", "generic-ssh"])
def test_teardown_facts_have_exactly_the_typed_keys_in_order(name: str) -> None:
    facts = G.teardown_facts(load_profile(name))
    assert list(facts) == TEARDOWN_KEYS
    for action in facts["actions"]:
        assert list(action) == _order(G.ActionView)
    for keep in facts["keeps_billing"]:
        assert list(keep) == _order(G.KeepsBilling)
    for deletion in facts["deletes_irreversibly"]:
        assert list(deletion) == _order(G.Deletion)
    for clock in facts["clocks"]:
        assert list(clock) == _order(G.ClockView)
    for step in facts["plan"]:
        assert list(step) == _order(G.PlanStep)
