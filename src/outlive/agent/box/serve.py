"""``serve``: a long-lived agent for a resident client (the local daemon, ``watch``, ``logs -f``).

It answers only the read-only verbs (``wire.SERVE_VERBS``): a request repeated after a dropped
channel must change nothing.
"""

from __future__ import annotations

import json
import os
import select
from typing import Any

from outlive import wire

from .common import AGENT_VERSION, Rec
from .verbs import answer

SERVE_IDLE_S = 900.0  # no request for this long: exit (the client also closes our stdin)


def serve(inp: Any, out: Any, idle_s: float = SERVE_IDLE_S) -> int:
    """Answer one JSON line per request line, ``{"verb": V, "request": {...}}``, until stdin ends.

    The first line out is a greeting, so the client knows the agent started (not just ssh).
    Requests are answered in order; a line that is not a request gets an error reply, not an exit.
    """

    def send(doc: Rec) -> None:
        out.write(json.dumps(doc).encode() + b"\n")
        out.flush()

    send({"ok": True, "serve": AGENT_VERSION, "verbs": list(wire.SERVE_VERBS), "pid": os.getpid()})
    fd = inp.fileno()
    buf = b""
    while True:
        while b"\n" not in buf:
            ready, _, _ = select.select([fd], [], [], idle_s)
            if not ready:
                return 0
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return 0
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            msg = None
        verb = msg.get("verb") if isinstance(msg, dict) else None
        if verb not in wire.SERVE_VERBS:
            send(
                {"ok": False, "error": "serve answers only {}".format(", ".join(wire.SERVE_VERBS))}
            )
            continue
        send(answer(str(verb), msg.get("request")))
