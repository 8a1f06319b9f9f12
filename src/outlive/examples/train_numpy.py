"""Toy training that survives any kill: a 2-layer MLP fitted by minibatch SGD, numpy only.

Everything the next step depends on is in the checkpoint (weights, epoch, position in the epoch,
this epoch's shuffle and the generator's full bit-generator state), so a run killed at any step and
relaunched with the identical command ends with a final.npz bit-identical to an uninterrupted run.

    python train_numpy.py --steps 300 --save-every 20 --step-sleep-s 0.01
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from outlive import Checkpointer, progress

SEED = 20240601
N_SAMPLES = 512
N_FEATURES = 8
N_HIDDEN = 16
BATCH_SIZE = 32
LEARNING_RATE = 0.05

State = Dict[str, Any]


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """The synthetic regression task, regenerated identically from SEED on every launch."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((N_SAMPLES, N_FEATURES))
    w_true = rng.standard_normal((N_FEATURES, 1))
    y = np.tanh(x @ w_true) + 0.1 * rng.standard_normal((N_SAMPLES, 1))
    return x, y


def initial_state() -> State:
    """Weights and data-order state before the first step."""
    init = np.random.default_rng(SEED + 1)
    shuffle = np.random.default_rng(SEED + 2)
    return {
        "w1": init.standard_normal((N_FEATURES, N_HIDDEN)) / np.sqrt(N_FEATURES),
        "b1": np.zeros(N_HIDDEN),
        "w2": init.standard_normal((N_HIDDEN, 1)) / np.sqrt(N_HIDDEN),
        "b2": np.zeros(1),
        "step": 0,
        "epoch": 0,
        "position": 0,  # index of the next batch within this epoch's order
        "order": shuffle.permutation(N_SAMPLES),
        "rng": shuffle.bit_generator.state,  # the shuffle generator, after drawing `order`
        "loss": float("nan"),
    }


def train_step(state: State, x: np.ndarray, y: np.ndarray) -> float:
    """One SGD step on the next minibatch; advances step, position and (at the end) the epoch."""
    start = state["position"] * BATCH_SIZE
    idx = state["order"][start : start + BATCH_SIZE]
    xb, yb = x[idx], y[idx]
    w1, b1, w2, b2 = state["w1"], state["b1"], state["w2"], state["b2"]

    hidden = np.tanh(xb @ w1 + b1)
    pred = hidden @ w2 + b2
    err = pred - yb
    loss = float(np.mean(err**2))

    d_pred = 2.0 * err / len(idx)
    d_w2 = hidden.T @ d_pred
    d_b2 = d_pred.sum(axis=0)
    d_hidden = (d_pred @ w2.T) * (1.0 - hidden**2)
    d_w1 = xb.T @ d_hidden
    d_b1 = d_hidden.sum(axis=0)

    state["w1"] = w1 - LEARNING_RATE * d_w1
    state["b1"] = b1 - LEARNING_RATE * d_b1
    state["w2"] = w2 - LEARNING_RATE * d_w2
    state["b2"] = b2 - LEARNING_RATE * d_b2
    state["step"] += 1
    state["loss"] = loss
    state["position"] += 1
    if state["position"] * BATCH_SIZE >= N_SAMPLES:
        # New epoch: restore the generator from the state, draw the next order, store it back.
        shuffle = np.random.default_rng()
        shuffle.bit_generator.state = state["rng"]
        state["order"] = shuffle.permutation(N_SAMPLES)
        state["rng"] = shuffle.bit_generator.state
        state["epoch"] += 1
        state["position"] = 0
    return loss


def _npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    """An .npz with fixed zip timestamps, so equal arrays give equal bytes (np.savez stamps now)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]))
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def write_final(directory: Path, state: State) -> Path:
    """Write the final weights to ``directory/final.npz`` atomically: tmp, fsync, rename, fsync."""
    final = directory / "final.npz"
    tmp = directory / f".final.npz.tmp-{os.getpid()}"
    data = _npz_bytes({k: state[k] for k in ("w1", "b1", "w2", "b2")})
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename is durable only once the directory entry is (U6)
    finally:
        os.close(dir_fd)
    return final


def parse_args(argv: List[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=300, help="total SGD steps (default 300)")
    parser.add_argument("--save-every", type=int, default=20, help="checkpoint period in steps")
    parser.add_argument(
        "--step-sleep-s", type=float, default=0.01, help="pause per step, to pose as real work"
    )
    args = parser.parse_args(argv)
    if args.steps < 0 or args.save_every < 1 or args.step_sleep_s < 0:
        parser.error("--steps must be >= 0, --save-every >= 1 and --step-sleep-s >= 0")
    return args


def main(argv: List[str] | None = None) -> int:
    args = parse_args(argv)
    total_steps = 2 if os.environ.get("OUTLIVE_SMOKE") == "1" else args.steps
    x, y = make_data()
    with Checkpointer() as ckpt:
        restored = ckpt.load_latest()
        if restored is not None:
            state: State = restored.state
            print(f"resumed from step {restored.step} ({restored.path.name})", flush=True)
        else:
            state = initial_state()
        while state["step"] < total_steps:
            loss = train_step(state, x, y)
            step = state["step"]
            progress(step, loss=loss, epoch=state["epoch"])
            saved = False
            if step % args.save_every == 0 or step == total_steps:
                ckpt.save(state, step=step)
                saved = True
            # Safe point: the handler only raised a flag; we save here, never inside it (SLURM1).
            if ckpt.preempted:
                if not saved:
                    ckpt.save(state, step=step)
                print(f"preempted at step {step}: saved, exiting for requeue", flush=True)
                return ckpt.requeue_exit_code
            if args.step_sleep_s > 0:
                time.sleep(args.step_sleep_s)
        path = write_final(ckpt.directory, state)
        print(
            f"done: {state['step']} steps, loss {state['loss']:.6f}, weights in {path}", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
