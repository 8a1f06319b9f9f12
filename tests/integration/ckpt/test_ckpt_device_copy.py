"""The CUDA snapshot path (``outlive.ckpt.device_copy``): copies on a side stream into pinned
buffers, the training stream never synchronised, the writer waiting on the copies' event.

On CPU the path runs with injected ``DeviceOps`` serving CPU tensors: ``HostOps`` does the real
work with torch CPU tensors, and ``RecordingOps`` logs every call and holds the copies back until
someone waits on their event, as a device queue would; a writer that read before waiting would
write the zeros of fresh buffers. The last test runs the real CUDA ops when there is a GPU.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from outlive import Checkpointer
from outlive.ckpt import device_copy

torch = pytest.importorskip(
    "torch", reason="the device-copy tests copy torch tensors; `uv sync --group ml` installs it"
)

Call = Tuple[str, Tuple[Any, ...], str]  # (method, arguments, thread name)


class HostOps:
    """``DeviceOps`` for CPU tensors, for real: named streams, buffers from torch.empty, a copy
    that is done when queued and events that are complete when recorded."""

    device_type = "cpu"

    def current_stream(self, device: Any) -> Any:
        return ("compute", str(device))

    def copy_stream(self, device: Any) -> Any:
        return ("copy", str(device))

    def alloc_pinned(self, like: Any) -> Any:
        return torch.zeros(like.shape, dtype=like.dtype)

    def copy_async(self, dst: Any, src: Any, stream: Any) -> None:
        dst.copy_(src)

    def record_event(self, stream: Any) -> Any:
        return ("event", stream)

    def wait_event(self, stream: Any, event: Any) -> None:
        pass

    def host_wait(self, event: Any) -> None:
        pass


class RecordingOps(HostOps):
    """HostOps whose copies run only once an event recorded after them is waited on."""

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self._queued: List[Callable[[], None]] = []
        self._events = 0

    def _log(self, name: str, *args: Any) -> None:
        self.calls.append((name, args, threading.current_thread().name))

    def current_stream(self, device: Any) -> Any:
        self._log("current_stream", device)
        return super().current_stream(device)

    def copy_stream(self, device: Any) -> Any:
        self._log("copy_stream", device)
        return super().copy_stream(device)

    def alloc_pinned(self, like: Any) -> Any:
        self._log("alloc_pinned", tuple(like.shape))
        return super().alloc_pinned(like)

    def copy_async(self, dst: Any, src: Any, stream: Any) -> None:
        self._log("copy_async", stream)
        self._queued.append(lambda: dst.copy_(src))

    def record_event(self, stream: Any) -> Any:
        self._events += 1
        event = ("event", self._events, stream)
        self._log("record_event", stream, event)
        return event

    def wait_event(self, stream: Any, event: Any) -> None:
        self._log("wait_event", stream, event)

    def host_wait(self, event: Any) -> None:
        self._log("host_wait", event)
        queued, self._queued = self._queued, []
        for run in queued:
            run()

    def names(self) -> List[str]:
        return [name for name, _, _ in self.calls]


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingOps]:
    """CPU tensors take the device path, and any torch.cuda.synchronize call is recorded."""
    recording = RecordingOps()
    monkeypatch.setitem(device_copy.DEVICE_OPS, "cpu", lambda: recording)
    synchronized: List[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: synchronized.append("sync"))
    yield recording
    assert synchronized == [], "the save path called torch.cuda.synchronize"


def _state(seed: int) -> Dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(64, 32, generator=gen),
        "b": torch.randn(32, generator=gen).to(torch.bfloat16),
        "t": torch.randn(8, 4, generator=gen).t(),  # a non-contiguous view
        "step": seed,
    }


def _ckpt(directory: Path, **kwargs: Any) -> Checkpointer:
    return Checkpointer(directory, handle_signals=False, **kwargs)


def _assert_same(got: Dict[str, Any], want: Dict[str, Any]) -> None:
    assert got["step"] == want["step"]
    for key in ("w", "b", "t"):
        assert got[key].dtype == want[key].dtype, key
        assert torch.equal(got[key], want[key]), key


def test_copies_queue_behind_the_training_stream_and_fence_it(
    tmp_path: Path, ops: RecordingOps
) -> None:
    state = _state(1)
    with _ckpt(tmp_path) as ckpt:
        ckpt.save(state, step=1)
        ckpt.flush()
    names = ops.names()
    assert names.count("copy_async") == 3 and names.count("alloc_pinned") == 3
    first_copy = names.index("copy_async")
    # 1. the copy stream waits (device-side) on an event recorded on the training stream.
    compute_event = next(c[1][1] for c in ops.calls if c[0] == "record_event")
    assert compute_event[2][0] == "compute"
    wait_for_compute = ops.calls.index(
        ("wait_event", (("copy", "cpu"), compute_event), "MainThread")
    )
    assert wait_for_compute < first_copy
    # 2. every copy runs on the copy stream, then an event on that stream closes them.
    assert {c[1] for c in ops.calls if c[0] == "copy_async"} == {(("copy", "cpu"),)}
    last_copy = max(i for i, name in enumerate(names) if name == "copy_async")
    copy_event = ops.calls[last_copy + 1][1][1]
    assert ops.calls[last_copy + 1][0] == "record_event" and copy_event[2][0] == "copy"
    # 3. the training stream waits on the copies; the caller's thread never blocks on them.
    assert ("wait_event", (("compute", "cpu"), copy_event), "MainThread") in ops.calls
    host_waits = [c for c in ops.calls if c[0] == "host_wait"]
    assert host_waits == [("host_wait", (copy_event,), "outlive-persist")]


def test_the_writer_waits_for_the_copies_before_reading(tmp_path: Path, ops: RecordingOps) -> None:
    first, second = _state(1), _state(2)
    with _ckpt(tmp_path, keep_last=2) as ckpt:
        ckpt.save(first, step=1)
        ckpt.save(second, step=2)  # into the first save's buffers, reused once it is committed
        _assert_same(ckpt.load(1).state, first)  # fresh buffers hold zeros until the copy runs
        _assert_same(ckpt.load(2).state, second)  # reused ones hold the first state until then
    assert ops.names().count("alloc_pinned") == 3  # allocated once, for the first save


class FailingOps(RecordingOps):
    """RecordingOps whose second copy cannot be queued (a device error mid-snapshot)."""

    def copy_async(self, dst: Any, src: Any, stream: Any) -> None:
        if self.names().count("copy_async") == 1:
            self._log("copy_async failed", stream)
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        super().copy_async(dst, src, stream)


def test_a_snapshot_that_fails_midway_fences_and_waits_for_its_queued_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = FailingOps()
    monkeypatch.setitem(device_copy.DEVICE_OPS, "cpu", lambda: failing)
    with _ckpt(tmp_path) as ckpt:
        with pytest.raises(RuntimeError, match="illegal memory access"):
            ckpt.save(_state(6), step=1)
        assert ckpt.steps() == []
    names = failing.names()
    assert names[names.index("copy_async failed") :] == [
        "copy_async failed",
        "record_event",
        "wait_event",
        "host_wait",
    ]


def test_without_buffer_reuse_the_copy_is_plain_and_synchronous(
    tmp_path: Path, ops: RecordingOps
) -> None:
    state = _state(3)
    with _ckpt(tmp_path, reuse_buffers=False) as ckpt:
        ckpt.save(state, step=1)
        _assert_same(ckpt.load(1).state, state)
    assert ops.calls == []


def test_a_sync_save_writes_from_the_live_tensors(tmp_path: Path, ops: RecordingOps) -> None:
    state = _state(4)
    with _ckpt(tmp_path, sync=True) as ckpt:
        ckpt.save(state, step=1)
        _assert_same(ckpt.load(1).state, state)
    assert "copy_async" not in ops.names()


def test_host_ops_alone_snapshot_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(device_copy.DEVICE_OPS, "cpu", HostOps)
    state = _state(5)
    before = state["w"].clone()
    with _ckpt(tmp_path) as ckpt:
        ckpt.save(state, step=1)
        state["w"].add_(1.0)  # the next step: the snapshot taken before it is what is saved
        got = ckpt.load(1).state
    assert torch.equal(got["w"], before)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (the only test allowed to skip under CI: runners have none); "
    "bench/ckpt_stall.py --cuda measures the same path on a GPU machine",
)
def test_real_cuda_snapshot_never_syncs_the_training_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked: List[Tuple[str, str]] = []

    def recorder(name: str, original: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            blocked.append((name, threading.current_thread().name))
            return original(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(torch.cuda, "synchronize", recorder("device", torch.cuda.synchronize))
    monkeypatch.setattr(
        torch.cuda.Stream, "synchronize", recorder("stream", torch.cuda.Stream.synchronize)
    )
    monkeypatch.setattr(
        torch.cuda.Event, "synchronize", recorder("event", torch.cuda.Event.synchronize)
    )
    weights = torch.randn(1024, 1024, device="cuda")
    expected = weights.cpu()
    with _ckpt(tmp_path, keep_last=2) as ckpt:
        ckpt.save({"w": weights}, step=1)
        weights.mul_(2.0)  # in place on the training stream, right after save() returned
        ckpt.save({"w": weights}, step=2)  # into the reused pinned buffer
        ckpt.flush()
        assert torch.equal(ckpt.load(1).state["w"], expected)
        assert torch.equal(ckpt.load(2).state["w"], expected * 2.0)
    assert [name for name, _ in blocked if name != "event"] == []
    assert {thread for name, thread in blocked if name == "event"} == {"outlive-persist"}
