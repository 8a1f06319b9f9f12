"""One-time confirmation tokens for ``down`` through MCP: a first call that finds nothing to
refuse but the missing confirmation gets a token bound to the target and to a digest of
everything the gate looked at (each run's state and the box's manifest hash now, every pull
record and whether its local copy still verifies) and to what it confirms (the plan for a human,
or ``execute``: one meter-stop verb on one provider resource). The second call looks again and
acts only if the digest and the intent are the same: a new run, a file changed on the box or a
newer pull voids the token. Tokens are single-use (spent even when they fail) and expire."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

TOKEN_TTL_S = 300.0
PLAN = "plan"  # the intent of a token that confirms only the plan of commands for a human


def state_digest(report: Any) -> str:
    """SHA-256 of the gate's look at a target, keys sorted: equal looks, equal digests."""
    text = json.dumps(report, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class GateTokens:
    """The tokens this server has issued and not yet spent (in memory: a restarted server
    forgets them all, which only ever refuses)."""

    def __init__(self, ttl_s: float = TOKEN_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # token -> target, digest, intent, expiry
        self._issued: dict[str, tuple[str, str, str, float]] = {}

    def issue(self, target: str, digest: str, intent: str = PLAN) -> str:
        token = "down-" + secrets.token_urlsafe(18)
        with self._lock:
            self._drop_expired()
            self._issued[token] = (target, digest, intent, self._clock() + self.ttl_s)
        return token

    def spend(self, token: str, target: str, digest: str, intent: str = PLAN) -> str | None:
        """Use ``token`` up; None when it confirms ``intent`` on ``target`` in state ``digest``,
        else why not."""
        with self._lock:
            self._drop_expired()
            held = self._issued.pop(token, None)
        if held is None:
            return (
                "the confirmation token is unknown, already used or expired (tokens last "
                f"{self.ttl_s:g} s and work once); call down again without a token for a fresh one"
            )
        if held[0] != target:
            return (
                f"the confirmation token was issued for target {held[0]!r}, not {target!r}; "
                "it is spent now: call down again without a token"
            )
        if held[2] != intent:
            return (
                f"the confirmation token was issued for {_said(held[2])}, not for "
                f"{_said(intent)}; it is spent now: call down again without a token, with the "
                "same execute value as the call that will use the token"
            )
        if held[1] != digest:
            return (
                f"what the gate checks on {target} changed since the token was issued (a run, a "
                "file on the box or a pull); the token is void: call down again without a token "
                "and read the new verdict"
            )
        return None

    def _drop_expired(self) -> None:
        now = self._clock()
        for token in [t for t, (*_, exp) in self._issued.items() if exp <= now]:
            del self._issued[token]


def _said(intent: str) -> str:
    return "the plan only (execute false)" if intent == PLAN else f"execute ({intent})"
