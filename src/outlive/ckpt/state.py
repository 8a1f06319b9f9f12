"""Full training state: everything the next step depends on, so a resumed run follows the same path.

The classic resume bugs are state that was never saved: the RNGs (dropout masks and augmentation
differ after resume), the sampler's epoch and position (the epoch is reshuffled or restarted), the
LR scheduler, the AMP GradScaler's scale (a scale reset to 65536 skips steps), the EMA weights.
``capture_training_state`` gathers them into one plain dict for ``Checkpointer.save`` and
``restore_training_state`` puts them back. torch and numpy are optional: their RNGs are captured
only when the job has imported them, and anything with ``state_dict()`` / ``load_state_dict()``
(a model, an optimizer, a scheduler, a scaler, an EMA, a sampler) is treated alike.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping

__all__ = [
    "ResumableSampler",
    "Resumed",
    "capture_rng",
    "capture_training_state",
    "restore_rng",
    "restore_training_state",
]

_STATEFUL = ("model", "optimizer", "scheduler", "scaler", "ema", "sampler")


def capture_rng() -> Dict[str, Any]:
    """The global RNG states: Python's ``random``, numpy's legacy global and torch CPU / CUDA."""
    state: Dict[str, Any] = {"python": random.getstate()}
    numpy = sys.modules.get("numpy")
    if numpy is not None and hasattr(numpy, "random"):
        state["numpy"] = numpy.random.get_state()
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_rng_state"):
        state["torch"] = torch.get_rng_state()
        # Only if CUDA is already in use: querying it would initialise a context for nothing.
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back what ``capture_rng`` captured (parts whose library is not loaded are skipped)."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        import numpy  # the state holds numpy arrays, so numpy is installed

        numpy.random.set_state(state["numpy"])
    if "torch" in state or "cuda" in state:
        import torch

        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            cuda_states = state["cuda"]
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_states)
            else:  # a different GPU count after requeue: restore the devices both runs have
                for index, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
                    torch.cuda.set_rng_state(cuda_state, index)


def capture_training_state(
    *,
    step: int,
    epoch: int = 0,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    scaler: Any = None,
    ema: Any = None,
    sampler: Any = None,
    extra: Any = None,
    rng: bool = True,
) -> Dict[str, Any]:
    """One dict with the progress counters, every given object's ``state_dict()`` and the RNGs.

    The dict references the live tensors; ``Checkpointer.save`` copies them in its snapshot.
    """
    state: Dict[str, Any] = {"step": int(step), "epoch": int(epoch), "extra": extra}
    objects = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "ema": ema,
        "sampler": sampler,
    }
    for name, obj in objects.items():
        if obj is not None:
            state[name] = obj.state_dict()
    if rng:
        state["rng"] = capture_rng()
    return state


@dataclass(frozen=True)
class Resumed:
    """The progress counters of a restored training state."""

    step: int
    epoch: int
    extra: Any = field(default=None, repr=False)


def restore_training_state(
    state: Mapping[str, Any],
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    scaler: Any = None,
    ema: Any = None,
    sampler: Any = None,
    rng: bool = True,
) -> Resumed:
    """Load ``state`` (from ``capture_training_state``) into the given objects, in place.

    An object given here whose state was not saved is an error: resuming it from scratch is
    exactly the silent divergence this guards against.
    """
    objects = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "ema": ema,
        "sampler": sampler,
    }
    missing: List[str] = [
        name for name, obj in objects.items() if obj is not None and name not in state
    ]
    if missing:
        raise KeyError(
            f"the checkpoint has no state for {', '.join(missing)}; it was saved without them, "
            "so resuming would silently start them over"
        )
    # The model first: an optimizer's state refers to the parameters it already holds.
    for name in _STATEFUL:
        obj = objects[name]
        if obj is not None:
            obj.load_state_dict(state[name])
    if rng and "rng" in state:
        restore_rng(state["rng"])
    return Resumed(
        step=int(state["step"]), epoch=int(state.get("epoch", 0)), extra=state.get("extra")
    )


class ResumableSampler:
    """Dataset indices in a fixed order per (seed, epoch) that resume mid-epoch where they left.

    Use it as a DataLoader's ``sampler`` and call ``set_epoch(epoch)`` before each epoch (as with
    DistributedSampler). ``position`` counts the indices handed out this epoch, which is exactly
    what the loop consumed with ``num_workers=0``; with worker processes prefetching ahead, pass
    the consumed count to ``state_dict(position=batches_done * batch_size)``.
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True) -> None:
        if isinstance(size, bool) or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        self.size = int(size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.position = 0

    def order(self, epoch: int) -> List[int]:
        """The index order of ``epoch`` (the same on every run with this seed)."""
        indices = list(range(self.size))
        if self.shuffle:
            random.Random(f"{self.seed}:{epoch}").shuffle(indices)
        return indices

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning, unless it is the epoch already under way."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        while self.position < self.size:
            index = order[self.position]
            self.position += 1
            yield index

    def __len__(self) -> int:
        return self.size

    def state_dict(self, position: int | None = None) -> Dict[str, int]:
        """Epoch and position (the consumed count, if given) with the seed and size to check."""
        pos = self.position if position is None else int(position)
        return {"seed": self.seed, "size": self.size, "epoch": self.epoch, "position": pos}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue from ``state``; another seed or dataset size is an error, not a reshuffle."""
        if int(state["seed"]) != self.seed or int(state["size"]) != self.size:
            raise ValueError(
                f"the sampler state is for seed {state['seed']} and {state['size']} samples, "
                f"this sampler has seed {self.seed} and {self.size}; resuming would reshuffle"
            )
        self.epoch = int(state["epoch"])
        self.position = min(max(int(state["position"]), 0), self.size)
