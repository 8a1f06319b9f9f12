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
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, List, Type

from outlive.testing._poll import DEADLINE_S, wait_until

__all__ = ["HUNG", "PEER_LOST_EXIT", "Group", "Zygote", "free_port"]

PEER_LOST_EXIT = 3  # a rank that saw another die (PeerLostError), as _dist_ckpt_worker exits
HUNG = 1000  # the status of a rank still running at its deadline (then killed)


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

    def launch(self, world: int, spec: Dict[str, Any], deadline_s: float = DEADLINE_S) -> Group:
        """Fork ``world`` ranks running ``spec`` on a fresh port; returns once they are forked.
        A rank still running ``deadline_s`` after the launch is killed and its status is HUNG."""
        if self._proc.stdin is None:
            raise RuntimeError("the zygote has no stdin")
        Path(spec["out"]).mkdir(parents=True, exist_ok=True)
        cmd = {"world": world, "port": free_port(), "spec": spec, "deadline_s": deadline_s}
        self._proc.stdin.write(json.dumps(cmd) + "\n")
        self._proc.stdin.flush()
        return Group(self, self._read()["pids"])

    def run(self, world: int, spec: Dict[str, Any], deadline_s: float = DEADLINE_S) -> List[int]:
        """Launch and wait: every rank's exit status."""
        return self.launch(world, spec, deadline_s).wait()

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(
        self,
        exc_type: Type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- rounds the tests and bench/dist_ckpt.py share ----------------------------------------------


def read_json(path: Path) -> Dict[str, Any] | None:
    """A JSON file a rank wrote (atomically), or None if it is not there."""
    try:
        doc: Dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return doc


def last_saved(out: Path) -> int:
    """The newest step rank 0 saw committed (its ``saved.txt``), 0 if none."""
    try:
        lines = (out / "saved.txt").read_text().split()
    except FileNotFoundError:
        return 0
    return int(lines[-1]) if lines else 0


def _ready(out: Path, world: int, group: Group) -> bool:
    return all((out / f"ready-{r}.json").exists() for r in range(world))


def kill_round(
    zygote: Zygote,
    world: int,
    spec: Dict[str, Any],
    rng: random.Random,
    window_s: float,
    deadline_s: float = DEADLINE_S,
) -> Dict[str, Any]:
    """Launch ``world`` ranks; once they committed a first step, SIGKILL a random rank at a
    random moment of the next ``window_s`` seconds; wait for the rest; what happened."""
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    group = zygote.launch(world, spec, deadline_s)
    wait_until(lambda: _ready(out, world, group), f"{world} ranks ready in {out}")
    wait_until(lambda: last_saved(out) > 0, f"a first commit in {out}")
    time.sleep(rng.uniform(0.0, window_s))
    victim = rng.randrange(world)
    os.kill(group.pids[victim], signal.SIGKILL)
    codes = group.wait()
    return {"victim": victim, "codes": codes, "committed": last_saved(out)}


def verify_round(zygote: Zygote, world: int, spec: Dict[str, Any]) -> Dict[str, Any]:
    """A fresh group of ``world`` ranks runs load_latest: the step each rank loaded and whether
    every rank's shards are bit-identical to the state of that step."""
    out = Path(spec["out"]) / f"verify-{world}"
    shutil.rmtree(out, ignore_errors=True)
    codes = zygote.run(world, dict(spec, scenario="verify", out=str(out)))
    docs = [read_json(out / f"verify-{r}.json") for r in range(world)]
    steps = {d["step"] for d in docs if d is not None}
    ok = codes == [0] * world and all(d is not None and d["ok"] for d in docs) and len(steps) == 1
    return {"ok": ok, "step": steps.pop() if len(steps) == 1 else None, "codes": codes}


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


def _reap(pids: List[int], deadline_s: float) -> List[int]:
    """Exit statuses in rank order; ranks still running at the deadline are SIGKILLed and
    reported as HUNG."""
    codes: Dict[int, int] = {}
    deadline = time.monotonic() + deadline_s
    while len(codes) < len(pids):
        for pid in pids:
            if pid not in codes:
                done, raw = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = _status(raw)
        if len(codes) < len(pids):
            if time.monotonic() > deadline:
                for pid in pids:
                    if pid not in codes:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        codes[pid] = HUNG
            time.sleep(0.01)
    return [codes[pid] for pid in pids]


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
        codes = _reap(pids, float(cmd["deadline_s"]))
        print(json.dumps({"codes": codes}), flush=True)


if __name__ == "__main__":
    _serve()
