"""The agent's entry point: ``main(argv)`` with argv ``[prog, VERB]``, ``[prog, "serve"]`` or
``[prog, "supervise", RUN_DIR, LAUNCHER...]``
or ``[prog, "k8s-attempt", REQUEST_JSON]`` (a Kubernetes pod). Imports only what the verb needs."""

from __future__ import annotations

import json
import sys

from outlive import wire

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import List


def main(argv: List[str]) -> int:
    if len(argv) >= 3 and argv[1] == "supervise":
        from .backends import supervisor_for
        from .common import AgentError

        try:
            supervisor = supervisor_for(argv[2], argv[3:])
        except AgentError as exc:  # the run names a backend this agent does not know
            sys.stderr.write(f"outlive: cannot supervise {argv[2]}: {exc}\n")
            return 2
        try:
            return supervisor.run()
        except AgentError as exc:  # a record it could not write (a full disk): one sentence
            sys.stderr.write(f"outlive: supervisor of {argv[2]}: {exc}\n")
            return 1
    if len(argv) == 3 and argv[1] == wire.K8S_ATTEMPT:  # a Kubernetes pod's entry point
        from .kubernetes import attempt

        return attempt(argv[2])
    if len(argv) == 2 and argv[1] == "serve":
        from .serve import serve

        return serve(sys.stdin.buffer, sys.stdout.buffer)
    if len(argv) != 2 or argv[1] not in wire.VERBS:
        sys.stdout.write(
            json.dumps({"ok": False, "error": "usage: box {{{}}}".format(",".join(wire.VERBS))})
        )
        return 2
    from .verbs import answer, framed

    try:
        req = json.loads(sys.stdin.read() or "{}")
    except ValueError as exc:
        reply = {"ok": False, "error": "ValueError: " + str(exc)}
    else:
        reply = answer(argv[1], req)
    sys.stdout.buffer.write(framed(reply))
    sys.stdout.flush()
    return 0
