"""Multi-rank torch.distributed (gloo, CPU) groups for checkpoint tests, forked from a zygote.

Importing torch and its checkpoint package takes seconds per interpreter, too long to pay for
every group of a kill loop, so one "zygote" process imports them once and forks the ranks of each
group (``run_rank`` in ``_dist_ckpt_worker``, the scenarios there)::

    with Zygote() as z:
        group = z.launch(3, {"scenario": "train", "dir": ..., "out": ..., "steps": 20})
        os.kill(group.pids[1], signal.SIGKILL)     # a rank dies at a moment of your choosing
        codes = group.wait()                        # exit statuses, -9 for the killed one

The zygote itself imports only the worker (torch); this module does not import torch, so a test
collects without it. Each rank's stdout and stderr go to ``<out>/rank-<r>.log``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, List, Type

from outlive.testing._poll import DEADLINE_S

__all__ = ["Group", "Zygote", "free_port"]

PEER_LOST_EXIT = 3  # a rank that saw another die (PeerLostError), as _dist_ckpt_worker exits


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Group:
    """The ranks of one launch: their pids, then their exit statuses."""

    def __init__(self, zygote: Zygote, pids: List[int]) -> None:
        self._zygote = zygote
        self.pids = pids
        self.codes: List[int] | None = None

    def wait(self) -> List[int]:
        """Every rank's exit status (negative: killed by that signal), in rank order."""
        if self.codes is None:
            self.codes = self._zygote._read()["codes"]
        return self.codes


class Zygote:
    """A process with torch imported that forks the ranks of one group at a time."""

    def __init__(self, timeout_s: float = DEADLINE_S) -> None:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        # torch's own modules compile in seconds each when no bytecode is cached: let it cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "outlive.testing.dist_ckpt"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._timeout_s = timeout_s
        if self._read().get("ready") is not True:
            raise RuntimeError("the distributed-checkpoint zygote did not start")

    def _read(self) -> Dict[str, Any]:
        if self._proc.stdout is None:
            raise RuntimeError("the zygote has no stdout")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote exited (status {self._proc.wait()})")
        doc: Dict[str, Any] = json.loads(line)
        return doc

    def launch(self, world: int, spec: Dict[str, Any]) -> Group:
        """Fork ``world`` ranks running ``spec`` on a fresh port; returns once they are forked."""
        if self._proc.stdin is None:
            raise RuntimeError("the zygote has no stdin")
        Path(spec["out"]).mkdir(parents=True, exist_ok=True)
        cmd = {"world": world, "port": free_port(), "spec": spec}
        self._proc.stdin.write(json.dumps(cmd) + "\n")
        self._proc.stdin.flush()
        return Group(self, self._read()["pids"])

    def run(self, world: int, spec: Dict[str, Any]) -> List[int]:
        """Launch and wait: every rank's exit status."""
        return self.launch(world, spec).wait()

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(
        self,
        exc_type: Type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _status(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def _fork_rank(spec: Dict[str, Any], rank: int, world: int, port: int) -> int:
    from outlive.testing._dist_ckpt_worker import run_rank

    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        log = os.open(
            Path(spec["out"]) / f"rank-{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdin.close()
        code = run_rank(spec, rank, world, port)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    """The zygote's loop: one JSON command a line on stdin, answers on stdout."""
    import torch._dynamo  # noqa: F401 - DTensor imports it lazily: pay once, not per rank

    import outlive.testing._dist_ckpt_worker  # noqa: F401 - pay for torch once, here

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        sys.stdout.flush()
        pids = [_fork_rank(cmd["spec"], r, cmd["world"], cmd["port"]) for r in range(cmd["world"])]
        print(json.dumps({"pids": pids}), flush=True)
        codes = [_status(os.waitpid(pid, 0)[1]) for pid in pids]
        print(json.dumps({"codes": codes}), flush=True)


if __name__ == "__main__":
    _serve()
