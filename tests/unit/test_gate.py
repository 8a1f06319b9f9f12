"""The teardown gate's table comes from the profile, and its verdict follows the Iron Law.

``teardown_facts`` is compared with the built-in profiles for RunPod, Paperspace Core and a bare
SSH box; ``decide`` is driven with the reports ``inspect`` produces (the real look at a box is
in tests/integration/ssh/test_pull_gate.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from outlive.lifecycle.gate import decide, teardown_facts
from outlive.profiles import load_profile

PROFILES = ("runpod", "paperspace-core", "generic-ssh")


@pytest.mark.parametrize("name", PROFILES)
def test_table_is_the_profiles_teardown_verbs(name: str) -> None:
    profile = load_profile(name)
    facts = teardown_facts(profile)
    assert facts["meter_stop_verb"] == profile.meter_stop_verb
    assert [
        (a["verb"], a["command"], a["stops_billing"], a["keeps_billing"], a["deletes"])
        for a in facts["actions"]
    ] == [
        (a.verb, a.command, a.stops_billing, a.keeps_billing, a.deletes) for a in profile.teardown
    ]
    assert [a["reversible"] for a in facts["actions"]] == [a.reversible for a in profile.teardown]
    assert facts["deletes_irreversibly"] == [
        {"verb": a.verb, "deletes": a.deletes} for a in profile.teardown if not a.reversible
    ]
    # danger clocks first: exactly the profile's, the ones to surface up front leading
    assert [c["name"] for c in facts["clocks"]] == [c.name for c in profile.clocks_first()]
    assert [c["what_happens"] for c in facts["clocks"]] == [
        c.what_happens for c in profile.clocks_first()
    ]
    # the plan is every irreversible verb, with the profile's command where it has one
    assert [(p["verb"], p["command"]) for p in facts["plan"]] == [
        (a.verb, a.command) for a in profile.teardown if not a.reversible
    ]
    for step in facts["plan"]:
        assert step["how"] == step["command"] or "provider's console" in step["how"]


def test_runpod_terminate_is_the_meter_stop_and_stop_keeps_the_volume_at_twice_the_rate() -> None:
    facts = teardown_facts(load_profile("runpod"))
    assert facts["meter_stop"]["verb"] == "terminate"
    assert facts["meter_stop"]["reversible"] is False
    assert facts["plan"] == [
        {
            "verb": "terminate",
            "command": "runpodctl remove pod <pod-id>",
            "how": "runpodctl remove pod <pod-id>",
        }
    ]
    after_stop = {k["what"]: k for k in facts["keeps_billing"] if k["after"] == "stop"}
    assert after_stop["volume disk"]["multiplier"] == 2.0
    assert "2×" in after_stop["volume disk"]["billing"]
    assert "container disk" not in after_stop  # it does not survive a stop
    after_terminate = [k["what"] for k in facts["keeps_billing"] if k["after"] == "terminate"]
    assert "network volume" in after_terminate
    assert {c["name"] for c in facts["clocks"][:3]} == {
        "stopped pod still bills",
        "low balance",
        "container disk fills",
    }


def test_paperspace_teardown_is_destroy_then_release_ip_then_delete_snapshot() -> None:
    facts = teardown_facts(load_profile("paperspace-core"))
    assert [p["verb"] for p in facts["plan"]] == ["destroy", "release static IP", "delete snapshot"]
    release = facts["plan"][1]
    assert release["command"] == "pspace public-ip release <ip>"
    assert facts["meter_stop"]["verb"] == "shut down"  # the profile's "shut-down", by name
    assert facts["meter_stop"]["reversible"] is True
    kept = " ".join(str(k["what"]) for k in facts["keeps_billing"])
    assert "static IP" in kept and "snapshot" in kept
    assert any(k["what"] == "snapshot" and k["after"] == "destroy" for k in facts["keeps_billing"])


def test_generic_box_has_no_command_and_no_idle_timer() -> None:
    facts = teardown_facts(load_profile("generic-ssh"))
    assert facts["meter_stop"] is None  # "manual": nothing to match
    assert facts["plan"][0]["verb"] == "destroy" and facts["plan"][0]["command"] is None
    assert facts["clocks"][0]["name"] == "no idle timer"


# ---------------------------------------------------------------------------------------------
# the verdict


def _report(
    *,
    lost: int = 0,
    busy: bool = False,
    reachable: bool = True,
    name: str = "gpu",
    state: str | None = None,
) -> dict[str, Any]:
    facts = teardown_facts(load_profile("runpod"))
    runs = [
        {
            "run_id": "r1",
            "name": "train",
            "state": state if state is not None else ("running" if busy else "succeeded"),
            "covered": lost == 0,
            "uncovered": [],
        }
    ]
    items = [
        {
            "path": f"ckpt/f{i}",
            "box_path": f"/workspace/d/train/f{i}",
            "size_bytes": 10,
            "why": "never pulled",
            "runs": ["r1"],
            "names": ["train"],
        }
        for i in range(lost)
    ]
    return {
        "target": name,
        "reachable": reachable,
        "error": None if reachable else "gpu: unreachable (No route to host)",
        "runs": runs,
        "lost_if_abandoned": items,
        "teardown": facts,
        "allowed": False,
        "refused": None,
        "confirmed": False,
        "abandoned": False,
        "plan": None,
    }


def test_passes_with_everything_covered_and_the_right_name() -> None:
    verdict = decide(_report(), confirm="gpu")
    assert verdict["allowed"] and verdict["confirmed"] and verdict["refused"] is None
    assert verdict["plan"] == teardown_facts(load_profile("runpod"))["plan"]


@pytest.mark.parametrize("typed", [None, "GPU", "gpu2", ""])
def test_refuses_without_the_exact_name(typed: str | None) -> None:
    verdict = decide(_report(), confirm=typed)
    assert not verdict["allowed"] and verdict["plan"] is None
    assert "name" in verdict["refused"]


def test_refuses_uncovered_results_even_with_the_right_name() -> None:
    verdict = decide(_report(lost=2), confirm="gpu")
    assert not verdict["allowed"] and verdict["plan"] is None
    assert "2 file(s)" in verdict["refused"] and "outlive pull r1" in verdict["refused"]
    assert "Iron Law" in verdict["refused"]


def test_refuses_while_a_run_is_still_running() -> None:
    verdict = decide(_report(busy=True), confirm="gpu")
    assert not verdict["allowed"] and "'train' running" in verdict["refused"]


@pytest.mark.parametrize("state", ["requeued", "pending", "unknown", "", "something-new"])
def test_stays_shut_for_a_run_that_has_not_ended_or_whose_state_is_unknown(state: str) -> None:
    """A requeued run starts again, and one whose records the box could not read may still be
    writing: with every file covered and the name typed, the gate still refuses."""
    verdict = decide(_report(state=state), confirm="gpu")
    assert not verdict["allowed"] and verdict["plan"] is None
    assert f"'train' {state}" in verdict["refused"] and "not ended" in verdict["refused"]
    if state not in ("requeued", "pending"):
        assert "`outlive status` says why" in verdict["refused"]


@pytest.mark.parametrize("state", ["succeeded", "failed", "vanished", "cancelled"])
def test_an_ended_run_whose_results_are_covered_passes(state: str) -> None:
    assert decide(_report(state=state), confirm="gpu")["allowed"]


def test_refuses_an_unreachable_box() -> None:
    verdict = decide(_report(reachable=False), confirm="gpu")
    assert not verdict["allowed"] and "last-known" in verdict["refused"]


def test_abandoning_needs_its_own_typed_phrase() -> None:
    report = _report(lost=3)
    assert not decide(report, confirm="gpu", abandon=True)["allowed"]
    wrong = decide(report, confirm="gpu", abandon=True, confirm_abandon="gpu")
    assert not wrong["allowed"] and "abandon gpu" in wrong["refused"]
    ok = decide(report, confirm="gpu", abandon=True, confirm_abandon="abandon gpu")
    assert ok["allowed"] and ok["abandoned"]
    # the abandon phrase never stands in for the target's name
    assert not decide(report, confirm=None, abandon=True, confirm_abandon="abandon gpu")["allowed"]


def test_interactive_answers_are_asked_in_order() -> None:
    asked: list[str] = []
    answers = iter(["abandon gpu", "gpu"])

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    verdict = decide(_report(lost=1), confirm=None, abandon=True, ask=ask)
    assert verdict["allowed"] and verdict["abandoned"]
    assert "abandon gpu" in asked[0] and "(gpu)" in asked[1]


def test_nothing_on_the_target_still_needs_the_name() -> None:
    report = _report()
    report["runs"] = []
    assert not decide(report, confirm=None)["allowed"]
    assert decide(report, confirm="gpu")["allowed"]


def test_the_gates_report_shows_a_boxs_file_names_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file on the box named "[/bold]..." stopped `down` with a MarkupError traceback before
    it printed its refusal; one carrying an escape sequence reached the terminal."""
    from outlive.cli.pull_cmds import _print_gate

    report = _report(lost=1)
    name = "[/bold] \x1b]52;c;QUFB\x07 [link=http://x]y"
    report["runs"][0].update(
        covered=False,
        files=1,
        size_bytes=10,
        uncovered=[
            {"path": name, "box_path": f"/w/{name}", "size_bytes": 10, "why": "never pulled"}
        ],
    )
    report["lost_if_abandoned"][0].update(box_path=f"/w/{name}")
    report.update(note="outlive checks only the runs it launched", released=[])
    _print_gate(report)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "  • train: /w/[/bold] \\x1b]52;c;QUFB\\x07 [link=http://x]y (10 B, never pulled)" in out
    assert "\x1b]" not in out and "\x07" not in out
