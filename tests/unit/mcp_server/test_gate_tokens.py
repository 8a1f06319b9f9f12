"""The one-time tokens of `down` through MCP: bound to a target and a state digest, spent on
first use, gone after their time (a clock of the test's own, no sleeping)."""

from __future__ import annotations

from outlive.mcp_server.gate_tokens import GateTokens, state_digest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_confirms_its_target_and_state_once() -> None:
    tokens = GateTokens(clock=Clock())
    token = tokens.issue("box", "d1")
    assert tokens.spend(token, "box", "d1") is None
    again = tokens.spend(token, "box", "d1")
    assert again is not None and "already used" in again


def test_a_changed_state_or_another_target_voids_the_token_and_spends_it() -> None:
    tokens = GateTokens(clock=Clock())
    token = tokens.issue("box", "d1")
    changed = tokens.spend(token, "box", "d2")
    assert changed is not None and "changed since the token was issued" in changed
    assert tokens.spend(token, "box", "d1") is not None  # spent by the failed use
    other = tokens.issue("box", "d1")
    wrong = tokens.spend(other, "gpu", "d1")
    assert wrong is not None and "'box'" in wrong
    assert tokens.spend(other, "box", "d1") is not None


def test_a_token_expires() -> None:
    clock = Clock()
    tokens = GateTokens(ttl_s=60.0, clock=clock)
    token = tokens.issue("box", "d1")
    clock.now += 60.0
    late = tokens.spend(token, "box", "d1")
    assert late is not None and "expired" in late


def test_tokens_differ_and_the_digest_ignores_key_order() -> None:
    tokens = GateTokens(clock=Clock())
    assert tokens.issue("box", "d") != tokens.issue("box", "d")
    assert state_digest({"a": 1, "b": [1, 2]}) == state_digest({"b": [1, 2], "a": 1})
    assert state_digest({"a": 1}) != state_digest({"a": 2})


def test_a_token_confirms_only_the_intent_it_was_issued_for() -> None:
    tokens = GateTokens(clock=Clock())
    plan = tokens.issue("box", "d1")
    wrong = tokens.spend(plan, "box", "d1", "terminate runpod pod-1")
    assert wrong is not None and "the plan only (execute false)" in wrong
    assert tokens.spend(plan, "box", "d1") is not None  # spent by the failed use
    stop = tokens.issue("box", "d1", "terminate runpod pod-1")
    assert tokens.spend(stop, "box", "d1", "terminate runpod pod-1") is None
    other = tokens.issue("box", "d1", "terminate runpod pod-1")
    plain = tokens.spend(other, "box", "d1")
    assert plain is not None and "execute (terminate runpod pod-1)" in plain
