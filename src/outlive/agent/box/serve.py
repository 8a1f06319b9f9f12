"""``serve``: a long-lived agent for a resident client (the local daemon, ``watch``, ``logs -f``).

It answers the read-only verbs and ``launch`` (``wire.SERVE_VERBS``), and ``manifest`` for a
pull, which asks for its roster and then its hashes over a channel of its own (one agent start
on the box instead of two); the client repeats only a read-only request after a dropped
channel. A launch forks its supervisor from this process exactly as from a one-shot agent (new
session, stdio on /dev/null and the run's log, every other descriptor closed), so nothing of
the channel stays open in it; this loop reaps each supervisor that ends, so none lingers as a
zombie that a probe would take for alive.
"""

from __future__ import annotations

import json
import os
import select
import time

from outlive import wire

from .common import AGENT_VERSION, Rec
from .verbs import answer, framed

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Any

# What this loop answers: a resident client's verbs, and a pull's roster and hashes.
ANSWERS = (*wire.SERVE_VERBS, "manifest")
_REAP_TICK_S = 1.0
SERVE_IDLE_S = 900.0  # no request for this long: exit (the client also closes our stdin)


def serve(inp: Any, out: Any, idle_s: float = SERVE_IDLE_S) -> int:
    """Answer one JSON line per request line, ``{"verb": V, "request": {...}}``, until stdin ends
    (a reply with bytes is its header line, then the bytes: ``verbs.framed``).

    The first line out is a greeting, so the client knows the agent started (not just ssh).
    Requests are answered in order; a line that is not a request gets an error reply, not an exit.
    """

    def send(doc: Rec) -> None:
        out.write(json.dumps(doc).encode() + b"\n")
        out.flush()

    send({"ok": True, "serve": AGENT_VERSION, "verbs": list(ANSWERS), "pid": os.getpid()})
    fd = inp.fileno()
    buf = b""
    idle_until = time.monotonic() + idle_s
    while True:
        while b"\n" not in buf:
            _reap()
            left_s = idle_until - time.monotonic()
            ready, _, _ = select.select([fd], [], [], min(_REAP_TICK_S, max(0.0, left_s)))
            if not ready:
                if left_s <= 0:
                    return 0
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return 0
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        idle_until = time.monotonic() + idle_s
        _reap()
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            msg = None
        verb = msg.get("verb") if isinstance(msg, dict) else None
        if verb not in ANSWERS:
            send({"ok": False, "error": "serve answers only {}".format(", ".join(ANSWERS))})
            continue
        out.write(framed(answer(str(verb), msg.get("request")), end=b"\n"))
        out.flush()


def _reap() -> None:
    """Collect the supervisors this loop forked that have ended (the verbs wait for their own
    subprocesses, so between requests the only children are supervisors)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
