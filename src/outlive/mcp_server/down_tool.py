"""The ``down`` tool: the teardown gate in two calls, and ``execute`` on the second.

The first call looks (the gate's report, and what the target's pod or machine bills now where
its provider is configured) and issues a one-time token only when nothing but the confirmation
is missing. The token is bound to the target, to a digest of what the gate looked at and to its
intent: the plan for a human, or ``execute`` of the profile's meter-stop verb on the target's own
``cloud_id`` at its provider. The second call looks again and spends the token; only when it
matches does the gate pass (the token stands for the typed name), and only then, with
``execute``, is the verb called, exactly as ``outlive down TARGET --confirm TARGET --execute``.
Nothing acts on cost or on data alone: no token, no teardown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from outlive.mcp_server import guard
from outlive.mcp_server import shapes as S
from outlive.mcp_server.gate_tokens import PLAN, GateTokens, state_digest

if TYPE_CHECKING:
    from outlive.cloud.teardown import CloudLook
    from outlive.config import Target
    from outlive.session import Session


def _cloud(session: Session, target: Target, execute: bool) -> tuple[CloudLook | None, str]:
    """What the target's resource bills now (None where no provider is set up; with
    ``execute`` that is one sentence instead), and the intent a token for it carries."""
    from outlive.cloud.teardown import look, provider_for
    from outlive.errors import ProviderError
    from outlive.profiles import load_profile

    provider = provider_for(target, required=execute)
    if provider is None or not target.cloud_id:
        return None, PLAN
    try:
        seen = look(provider, target.cloud_id)
    except ProviderError:
        if execute:
            raise
        return None, PLAN
    if not execute:
        return seen, PLAN
    verb = load_profile(target.profile, session.cfg.profile_dirs).meter_stop_verb
    return seen, f"{verb} {provider.name} {target.cloud_id}"


def _first(doc: dict[str, Any], tokens: GateTokens, report: Any, intent: str) -> None:
    clean = (
        report["reachable"]
        and not report["lost_if_abandoned"]
        and not any(r["state"] in ("running", "pending") for r in report["runs"])
    )
    issued = tokens.issue(report["target"], state_digest(report), intent) if clean else None
    if issued:
        doc["refused"] = "the gate needs a confirmation: call down again with the token"
    doc.update(token=issued, token_expires_in_s=tokens.ttl_s if issued else None)
    if not issued:
        doc["next_step"] = "the gate refuses (see refused); fix that first, then call down again"
    elif intent == PLAN:
        doc["next_step"] = (
            "every result is covered by a verified pull: to confirm, call down again with this "
            "token (it works once, and only while nothing on the target changes); you get the "
            "plan of teardown commands for a human, and nothing is run"
        )
    else:
        verb, provider, cloud_id = intent.split(" ", 2)
        doc["next_step"] = (
            "every result is covered by a verified pull: to confirm, call down again with this "
            f"token and execute=true; outlive will then call {verb} on {provider} {cloud_id} "
            "(this target's resource, nothing else) and list again to say what still bills. "
            "The token works once, and only while nothing on the target changes"
        )


def down(tokens: GateTokens, session: Session, target: str, token: str | None,
         execute: bool) -> S.DownOut:  # fmt: skip
    from outlive.cli.cloud_cmds import down_execute
    from outlive.lifecycle.gate import decide, inspect

    tgt = session.cfg.target(guard.name(target, "target"))
    if token is not None:
        guard.name(token, "token")
    seen, intent = _cloud(session, tgt, execute)  # execute with no provider: refused here
    report = inspect(session, target)
    doc: dict[str, Any]
    if token is None:
        doc = dict(decide(report, confirm=None))
        doc.update(cloud=seen, executed=None)
        _first(doc, tokens, report, intent)
        return cast(S.DownOut, doc)
    why = tokens.spend(token, report["target"], state_digest(report), intent)
    doc = dict(decide(report, confirm=None if why else report["target"]))
    if why is not None:
        doc["refused"] = why
    done = down_execute(session.cfg, tgt) if doc["allowed"] and execute else None
    doc.update(cloud=seen, executed=done, token=None, token_expires_in_s=None)
    if not doc["allowed"]:
        doc["next_step"] = "call down again without a token and read the new verdict"
    elif done is None:
        doc["next_step"] = (
            "the gate passed: outlive runs none of the plan's commands; a human runs them, in order"
        )
    elif done["meter_stopped"]:
        called = "called" if done["acted"] else "not needed (it had already stopped)"
        billing = ", ".join(f"{b['kind']} {b['id']}" for b in done["still_billing"])
        doc["next_step"] = (
            f"{done['verb']} {called} on {done['provider']} {done['cloud_id']}: its meter has "
            "stopped; "
            + (f"still billing (see executed.still_billing): {billing}" if billing else
               "nothing of it bills any more")
        )  # fmt: skip
    else:
        doc["next_step"] = (
            f"{done['verb']} was called but {done['provider']} still shows {done['cloud_id']} "
            f"as {done['state']}; call down again (without a token) to look"
        )
    return cast(S.DownOut, doc)
