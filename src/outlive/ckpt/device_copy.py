"""Snapshots of accelerator tensors that never stop the training stream.

For each device met in a save, the copy runs on a dedicated stream of that device:

1. an event recorded on the training (current) stream marks "the state as of this save";
2. the copy stream waits on that event (a device-side dependency, no host sync), then copies
   every tensor with ``copy_(non_blocking=True)`` into pinned host buffers (allocated once and
   reused through the ``BufferPool``);
3. an event recorded on the copy stream marks "the copies have landed"; the training stream
   waits on it device-side, so a later in-place optimizer step cannot overwrite a weight before
   the copy has read it, and the background writer blocks on it (``host_wait``) before it reads
   a byte of the snapshot.

``save()`` thus returns as soon as the copies are queued: neither the training stream nor the
device is synchronised from the caller's thread. The device-specific calls sit behind the small
``DeviceOps`` protocol so the order of those steps is tested on CPU with a recording fake; the
CUDA implementation imports torch lazily, only once a CUDA tensor is met (the checkpoint core
stays stdlib-only at import).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Protocol, Tuple

__all__ = ["DEVICE_OPS", "DeviceBatch", "DeviceOps", "Pending", "TorchCudaOps", "ops_for"]


class DeviceOps(Protocol):
    """The device calls a snapshot needs; ``device_type`` is the ``tensor.device.type`` served."""

    device_type: str

    def current_stream(self, device: Any) -> Any:
        """The stream the training work of ``device`` is queued on."""

    def copy_stream(self, device: Any) -> Any:
        """A dedicated stream for snapshot copies (the same one each time)."""

    def alloc_pinned(self, like: Any) -> Any:
        """A host buffer (page-locked where the device has that) the shape and dtype of ``like``."""

    def copy_async(self, dst: Any, src: Any, stream: Any) -> None:
        """Queue ``dst.copy_(src)`` on ``stream`` and return at once."""

    def record_event(self, stream: Any) -> Any:
        """An event that completes once the work queued on ``stream`` so far has run."""

    def wait_event(self, stream: Any, event: Any) -> None:
        """Make ``stream`` wait on the device for ``event``; the calling thread does not block."""

    def host_wait(self, event: Any) -> None:
        """Block the calling thread until ``event`` has completed."""


@dataclass
class Pending:
    """Copies still in flight: the events the writer waits on before reading the buffers."""

    waits: List[Tuple[DeviceOps, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait(self) -> None:
        """Block until every copy has landed (called by the background writer, then a no-op)."""
        with self._lock:
            waits, self.waits = self.waits, []
            for ops, event in waits:
                ops.host_wait(event)


class DeviceBatch:
    """The copies of one snapshot, grouped by device: one copy stream and two events per device."""

    def __init__(self) -> None:
        self._open: Dict[Any, Tuple[DeviceOps, Any, Any]] = {}  # device -> (ops, compute, copy)

    def copy(self, ops: DeviceOps, src: Any, dst: Any) -> None:
        """Queue ``dst.copy_(src)`` behind the work already queued on ``src``'s device."""
        device = src.device
        opened = self._open.get(device)
        if opened is None:
            compute, stream = ops.current_stream(device), ops.copy_stream(device)
            ops.wait_event(stream, ops.record_event(compute))  # the state as of this save
            opened = self._open[device] = (ops, compute, stream)
        ops.copy_async(dst, src, opened[2])

    def close(self) -> Pending:
        """Fence every device's copies: the training stream and the writer wait on them."""
        pending = Pending()
        for ops, compute, stream in self._open.values():
            done = ops.record_event(stream)
            ops.wait_event(compute, done)  # no in-place update before the copy has read it
            pending.waits.append((ops, done))
        self._open = {}
        return pending


class TorchCudaOps:
    """``DeviceOps`` for CUDA through torch (already imported: a CUDA tensor was met)."""

    device_type = "cuda"

    def __init__(self) -> None:
        self._torch: Any = sys.modules["torch"]
        self._streams: Dict[Any, Any] = {}
        self._lock = threading.Lock()

    def current_stream(self, device: Any) -> Any:
        return self._torch.cuda.current_stream(device)

    def copy_stream(self, device: Any) -> Any:
        with self._lock:
            stream = self._streams.get(device)
            if stream is None:
                stream = self._streams[device] = self._torch.cuda.Stream(device=device)
            return stream

    def alloc_pinned(self, like: Any) -> Any:
        return self._torch.empty(like.shape, dtype=like.dtype, device="cpu", pin_memory=True)

    def copy_async(self, dst: Any, src: Any, stream: Any) -> None:
        with self._torch.cuda.stream(stream):
            dst.copy_(src, non_blocking=True)
        # The caching allocator must not hand src's memory to another tensor (if the job frees
        # it meanwhile) before this stream has read it.
        src.record_stream(stream)

    def record_event(self, stream: Any) -> Any:
        event = self._torch.cuda.Event()
        event.record(stream)
        return event

    def wait_event(self, stream: Any, event: Any) -> None:
        stream.wait_event(event)

    def host_wait(self, event: Any) -> None:
        event.synchronize()


_cuda_ops: List[TorchCudaOps] = []


def _cuda() -> DeviceOps:
    if not _cuda_ops:  # one instance per process: its copy streams are reused by every save
        _cuda_ops.append(TorchCudaOps())
    return _cuda_ops[0]


# device type -> the ops serving it; a device type not here is copied synchronously (copy_).
DEVICE_OPS: Dict[str, Callable[[], DeviceOps]] = {"cuda": _cuda}


def ops_for(device_type: str) -> DeviceOps | None:
    """The ops that snapshot tensors of ``device_type`` asynchronously, or None."""
    factory = DEVICE_OPS.get(device_type)
    return factory() if factory is not None else None
