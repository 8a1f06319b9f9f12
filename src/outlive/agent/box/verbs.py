"""The verb table (the verbs of ``wire.VERBS``; a test checks): each verb's module and function,
imported on first use (a probe never loads the audit, manifest or Slurm code), and one request
answered as one reply."""

from __future__ import annotations

from .common import AGENT_VERSION, AgentError, Rec, submodule

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Callable, Dict, Tuple

VERBS: Dict[str, Tuple[str, str]] = {
    "launch": ("runs", "verb_launch"),
    "probe": ("runs", "verb_probe"),
    "cancel": ("runs", "verb_cancel"),
    "tail": ("runs", "verb_tail"),
    "expand": ("deploy", "verb_expand"),
    "verify_deploy": ("deploy", "verb_verify_deploy"),
    "secret_put": ("secrets", "verb_secret_put"),
    "audit": ("audit", "verb_audit"),
    "doctor": ("audit", "verb_doctor"),
    "manifest": ("manifests", "verb_manifest"),  # pull manifests (issue 6)
    "ckpts": ("ckpts", "verb_ckpts"),  # the checkpoints in a run's durable dir (issue 20)
}


def handler(verb: str) -> Callable[[Rec], Rec]:
    module, name = VERBS[verb]
    fn: Callable[[Rec], Rec] = getattr(submodule(module), name)
    return fn


def answer(verb: str, req: object) -> Rec:
    """``{"ok": true, "result": ...}``, or ``{"ok": false, "error": ..., "kind": ...}``."""
    try:
        if not isinstance(req, dict):
            raise AgentError("the request must be a JSON object")
        return {"ok": True, "result": handler(verb)(req), "agent_version": AGENT_VERSION}
    except AgentError as exc:
        return {"ok": False, "error": str(exc), "kind": exc.kind}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}


def framed(reply: Rec, end: bytes = b"") -> bytes:
    """The reply as written: its JSON (no newline in it) and ``end``, or, when its result
    carries bytes (``data``: a ``tail`` asked with ``raw``), a JSON header whose ``raw`` says
    how many bytes follow, a newline, and those bytes as they are. A client that asked for no
    bytes never gets this form, so one that predates it reads every reply it gets."""
    import json

    result = reply.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("data"), bytes):
        return json.dumps(reply).encode() + end
    data: bytes = result["data"]
    head = dict(reply, result={k: v for k, v in result.items() if k != "data"}, raw=len(data))
    return json.dumps(head).encode() + b"\n" + data
