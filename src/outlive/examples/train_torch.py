"""Toy training that survives any kill, in PyTorch (CPU is enough): an MLP with dropout, AdamW, a
cosine LR schedule, a GradScaler and an EMA of the weights, fed by a DataLoader over a resumable
sampler.

Everything the next step depends on goes into the checkpoint through capture_training_state:
model, optimizer, scheduler, scaler, EMA, the sampler's epoch and position, the step and the RNGs
(dropout draws from torch's global generator). So a run killed at any step (SIGKILL, or SIGTERM:
it saves at its next safe point and exits 75) and relaunched with the identical command ends with
weights bit-identical to an uninterrupted run.

    python train_torch.py --steps 120 --save-every 10 --step-sleep-s 0.01
    python train_torch.py --steps 120 --save-every 0     # cadence from $OUTLIVE_MTBF_S (Daly)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

from outlive import Checkpointer, progress
from outlive.ckpt import ResumableSampler, capture_training_state, restore_training_state

SEED = 20240601
N_SAMPLES = 512
N_FEATURES = 8
N_HIDDEN = 32
BATCH_SIZE = 32
LEARNING_RATE = 0.01


def make_data() -> TensorDataset:
    """The synthetic regression task, regenerated identically from SEED on every launch."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=gen)
    w_true = torch.randn(N_FEATURES, 1, generator=gen)
    y = torch.tanh(x @ w_true) + 0.1 * torch.randn(N_SAMPLES, 1, generator=gen)
    return TensorDataset(x, y)


def make_model() -> nn.Module:
    torch.manual_seed(SEED + 1)
    return nn.Sequential(
        nn.Linear(N_FEATURES, N_HIDDEN), nn.Tanh(), nn.Dropout(0.1), nn.Linear(N_HIDDEN, 1)
    )


def final_digest(model: nn.Module, ema: nn.Module) -> str:
    """SHA-256 over the raw bytes of every weight (model, then EMA), in key order."""
    digest = hashlib.sha256()
    for prefix, module in (("model", model), ("ema", ema)):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{prefix}.{name}".encode())
            digest.update(
                tensor.detach().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
            )
    return digest.hexdigest()


def write_final(directory: Path, model: nn.Module, ema: nn.Module) -> Path:
    """Save the final weights atomically: tmp, fsync, rename, fsync the directory (U6)."""
    final = directory / "final.pt"
    tmp = directory / f".final.pt.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save({"model": model.state_dict(), "ema": ema.state_dict()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def parse_args(argv: List[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=120, help="total optimizer steps")
    parser.add_argument(
        "--save-every", type=int, default=10, help="checkpoint period in steps; 0: Daly cadence"
    )
    parser.add_argument("--step-sleep-s", type=float, default=0.01, help="pause per step")
    parser.add_argument("--sync", action="store_true", help="synchronous saves")
    args = parser.parse_args(argv)
    if args.steps < 0 or args.save_every < 0 or args.step_sleep_s < 0:
        parser.error("--steps, --save-every and --step-sleep-s must be >= 0")
    return args


def main(argv: List[str] | None = None) -> int:
    args = parse_args(argv)
    total_steps = 2 if os.environ.get("OUTLIVE_SMOKE") == "1" else args.steps
    data = make_data()
    model = make_model()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))  # type: ignore[no-untyped-call]
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=7)
    sampler = ResumableSampler(len(data), seed=SEED)
    # The loader gets its own generator: by default each new iterator draws a seed from torch's
    # global RNG, and a resumed run creates one more iterator than the uninterrupted run did.
    loader = DataLoader(
        data,
        batch_size=BATCH_SIZE,
        sampler=sampler,
        num_workers=0,
        generator=torch.Generator().manual_seed(SEED),
    )
    objects: Dict[str, Any] = dict(
        model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema
    )
    step, epoch, last_loss = 0, 0, float("nan")
    with Checkpointer(every_steps=args.save_every or None, sync=args.sync) as ckpt:
        restored = ckpt.load_latest()
        if restored is not None:
            resumed = restore_training_state(restored.state, sampler=sampler, **objects)
            step, epoch = resumed.step, resumed.epoch
            print(f"resumed from step {restored.step} ({restored.path.name})", flush=True)

        def state() -> Dict[str, Any]:
            return capture_training_state(step=step, epoch=epoch, sampler=sampler, **objects)

        model.train()
        while step < total_steps:
            sampler.set_epoch(epoch)
            for xb, yb in loader:
                loss = nn.functional.mse_loss(model(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                ema.update_parameters(model)
                step += 1
                last_loss = loss.item()
                progress(step, loss=last_loss, epoch=epoch, scale=scaler.get_scale())
                if ckpt.due(step) or step == total_steps:
                    ckpt.save(state(), step=step)
                # Safe point: the handler only raised a flag; we save here, never inside it.
                if ckpt.preempted:
                    ckpt.emergency_save(state(), step=step)
                    print(f"preempted at step {step}: saved, exiting for requeue", flush=True)
                    ckpt.exit_for_requeue()
                if step >= total_steps:
                    break
                if args.step_sleep_s > 0:
                    time.sleep(args.step_sleep_s)
            else:
                epoch += 1  # the sampler ran dry: the next epoch starts from its beginning
        path = write_final(ckpt.directory, model, ema)
        print(
            f"done: {step} steps, loss {last_loss:.6f}, "
            f"sha256 {final_digest(model, ema)}, weights in {path}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
