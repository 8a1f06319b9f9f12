"""What one rank runs for the distributed checkpoint tests and bench (imports torch).

A toy "training" state that makes resume errors visible bit for bit: two sharded float32 tensors
``w`` and ``m`` (DTensors, rows split over the ranks) and a torch.Generator whose state is part of
the checkpoint. Every step draws the full noise matrix from the generator (the same on every rank)
and updates each element from its own value only, so the state at step N is the same bits on any
world size, and ``expected(spec, N)`` recomputes it in one process.

Scenarios (``spec["scenario"]``):
  train   load_latest, then step to ``steps`` saving every ``save_every`` (or when any rank is
          preempted: ``term_rank`` sends itself SIGTERM at ``term_at``), ``final-<rank>.json`` at
          the end with the digest of the full tensors; exit 75 after a preemption save
  verify  load_latest into a fresh state of this world size; ``verify-<rank>.json`` says which
          step and whether this rank's shards equal ``expected`` for that step
  plain   the peer: ``dcp.save`` into step-N directories, no marker, on every step
  plain_check  (one process) load the newest step-N directory of ``plain`` like a naive resume
  script  run the file ``spec["script"]`` as ``__main__`` with torchrun's variables (RANK, ...)
  no_init build a DistributedCheckpointer without a process group: the error it raises
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import signal
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Shard

from outlive.ckpt.integrations.distributed import DistributedCheckpointer, PeerLostError
from outlive.errors import CheckpointError

ROWS = 48  # divisible by 1, 2, 3 and 4 ranks
PEER_LOST_EXIT = 3


def _cols(spec: Dict[str, Any]) -> int:
    return max(1, int(spec.get("size_bytes", 1 << 20)) // (ROWS * 4))


def initial(spec: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    gen = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    w = torch.randn(ROWS, _cols(spec), generator=gen)
    return w, torch.zeros_like(w), gen


def update(w: torch.Tensor, m: torch.Tensor, gen: torch.Generator, rows: slice) -> None:
    """One step, in place on this rank's rows of w and m."""
    noise = torch.randn(ROWS, w.shape[1], generator=gen)[rows]
    m.mul_(0.9).add_(noise)
    w.add_(m, alpha=-0.01)


def expected(spec: Dict[str, Any], step: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w, m and the generator state after ``step`` steps, computed in one process."""
    w, m, gen = initial(spec)
    for _ in range(step):
        update(w, m, gen, slice(None))
    return w, m, gen.get_state()


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _rows(rank: int, world: int) -> slice:
    per = ROWS // world
    return slice(rank * per, (rank + 1) * per)


def _replicated(spec: Dict[str, Any]) -> bool:
    return bool(spec.get("mode", "sharded") == "replicated")


def _state(spec: Dict[str, Any], mesh: Any, rank: int, world: int) -> Dict[str, Any]:
    """w, m (DTensors of this rank's rows; whole tensors when replicated), the generator."""
    w, m, gen = initial(spec)
    if _replicated(spec):
        return {"w": w, "m": m, "rng": gen.get_state(), "gen": gen}
    rows = _rows(rank, world)

    def shard(full: torch.Tensor) -> DTensor:
        return DTensor.from_local(full[rows].clone(), mesh, [Shard(0)], run_check=False)

    return {"w": shard(w), "m": shard(m), "rng": gen.get_state(), "gen": gen}


def _local(t: Any) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def _full(t: Any) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def _view(state: Dict[str, Any]) -> Dict[str, Any]:
    """What is checkpointed: the tensors and the generator's state."""
    return {"w": state["w"], "m": state["m"], "rng": state["gen"].get_state()}


def _write(out: Path, name: str, doc: Dict[str, Any]) -> None:
    tmp = out / f".{name}.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, out / name)


def _resume(ckpt: DistributedCheckpointer, state: Dict[str, Any]) -> int:
    """load_latest into ``state`` (in place for DCP, copied back when replicated); the step."""
    view = _view(state)
    restored = ckpt.load_latest(None if ckpt.mode == "replicated" else view)
    if restored is None:
        return 0
    for key in ("w", "m", "rng"):
        if restored.state[key] is not view[key]:
            view[key].copy_(restored.state[key])
    state["gen"].set_state(view["rng"])
    return restored.step


def _train(spec: Dict[str, Any], rank: int, world: int, mesh: Any) -> int:
    out = Path(spec["out"])
    state = _state(spec, mesh, rank, world)
    ckpt = DistributedCheckpointer(
        spec["dir"],
        mode=spec.get("mode", "sharded"),
        keep_last=spec.get("keep_last", 2),
        async_save=bool(spec.get("async", False)),
        timeout_s=float(spec.get("timeout_s", 30)),
        every_steps=int(spec.get("save_every", 1)),
    )
    step = _resume(ckpt, state)
    rows = slice(None) if _replicated(spec) else _rows(rank, world)
    _write(out, f"ready-{rank}.json", {"step": step, "pid": os.getpid()})
    while step < int(spec["steps"]):
        update(_local(state["w"]), _local(state["m"]), state["gen"], rows)
        step += 1
        if spec.get("term_rank") == rank and spec.get("term_at") == step:
            os.kill(os.getpid(), signal.SIGTERM)
        committed = ckpt.last_committed
        if ckpt.should_save(step):
            ckpt.save(_view(state), step=step)
        if rank == 0 and ckpt.last_committed != committed:
            with open(out / "saved.txt", "a") as f:
                f.write(f"{ckpt.last_committed}\n")
        if ckpt.preempted:
            _write(out, f"preempt-{rank}.json", {"step": step})
            ckpt.exit_for_requeue()
    ckpt.close()
    w, m = _full(state["w"]), _full(state["m"])
    if rank == 0:
        _write(out, "final.json", {"step": step, "digest": digest(w, m, state["gen"].get_state())})
    return 0


def _verify(spec: Dict[str, Any], rank: int, world: int, mesh: Any) -> int:
    out = Path(spec["out"])
    state = _state(spec, mesh, rank, world)
    mode = spec.get("mode", "sharded")
    with DistributedCheckpointer(spec["dir"], mode=mode, handle_signals=False) as ckpt:
        step = _resume(ckpt, state)
    doc: Dict[str, Any] = {"step": None, "ok": True}
    if step:
        w, m, rng = expected(spec, step)
        rows = slice(None) if _replicated(spec) else _rows(rank, world)
        doc = {
            "step": step,
            "ok": bool(
                torch.equal(_local(state["w"]), w[rows])
                and torch.equal(_local(state["m"]), m[rows])
                and torch.equal(state["gen"].get_state(), rng)
            ),
        }
    _write(out, f"verify-{rank}.json", doc)
    return 0


def _plain(spec: Dict[str, Any], rank: int, world: int, mesh: Any) -> int:
    state = _state(spec, mesh, rank, world)
    root = Path(spec["dir"])
    _write(Path(spec["out"]), f"ready-{rank}.json", {"step": 0, "pid": os.getpid()})
    step = 0
    while step < int(spec.get("steps", 10**9)):
        update(_local(state["w"]), _local(state["m"]), state["gen"], _rows(rank, world))
        step += 1
        dcp_save(_view(state), checkpoint_id=str(root / f"step-{step:012d}"))
        if rank == 0:
            with open(Path(spec["out"]) / "saved.txt", "a") as f:
                f.write(f"{step}\n")
    return 0


def _load_plain(spec: Dict[str, Any], latest: Path) -> str:
    step = int(latest.name.split("-")[1])
    w, m, rng = expected(spec, step)
    view = {"w": torch.zeros_like(w), "m": torch.zeros_like(m), "rng": torch.zeros_like(rng)}
    try:
        dcp_load(view, checkpoint_id=str(latest), no_dist=True)
    except BaseException:  # whatever a partial directory makes DCP raise
        return "unloadable"
    same = all(torch.equal(view[k], v) for k, v in (("w", w), ("m", m), ("rng", rng)))
    return "ok" if same else "corrupt"


def plain_check(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Two resumes of the peer, in one process: the newest step-N directory (a script that globs
    for it), and the newest one that has DCP's ``.metadata`` (a careful script)."""
    root = Path(spec["dir"])
    dirs = sorted(p for p in root.iterdir() if p.name.startswith("step-")) if root.exists() else []
    with_metadata = [d for d in dirs if (d / ".metadata").exists()]
    return {
        "status": _load_plain(spec, dirs[-1]) if dirs else "missing",
        "metadata_status": _load_plain(spec, with_metadata[-1]) if with_metadata else "missing",
    }


SCENARIOS = {"train": _train, "verify": _verify, "plain": _plain}


def run_rank(spec: Dict[str, Any], rank: int, world: int, port: int) -> int:
    """Join the group on 127.0.0.1:``port`` and run ``spec["scenario"]``; the exit status."""
    if spec["scenario"] == "plain_check":
        _write(Path(spec["out"]), "plain_check.json", plain_check(spec))
        return 0
    if spec["scenario"] == "script":  # a user's script, as torchrun would start it
        os.environ.update(
            RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
            WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), **spec.get("env", {}),
        )  # fmt: skip
        try:
            runpy.run_path(spec["script"], run_name="__main__")
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0
    if spec["scenario"] == "no_init":  # the sentence a job gets without init_process_group
        try:
            DistributedCheckpointer(spec["dir"])
        except CheckpointError as exc:
            _write(Path(spec["out"]), "no_init.json", {"error": str(exc)})
        return 0
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=float(spec.get("timeout_s", 30))),
    )
    try:
        mesh = init_device_mesh("cpu", (world,))
        return SCENARIOS[spec["scenario"]](spec, rank, world, mesh)
    except PeerLostError as exc:
        print(f"rank {rank}: {exc}", flush=True)
        return PEER_LOST_EXIT
    except SystemExit as exc:
        return int(exc.code or 0)
    except BaseException:  # reported, and the exit status says it
        traceback.print_exc()
        return 1
