"""The payload of a version-2 or -3 checkpoint: a small pickle plus the raw bytes of every array.

``plan(state)`` pickles the state's skeleton in the caller's thread, with numpy arrays and dense
torch tensors replaced by references; ``Plan.snapshot()`` then copies each of them once into CPU
memory. Together they are the consistent snapshot a save blocks for; the background writer only
reads the snapshot. Layout (offsets from the payload start; integers big-endian)::

    0  8  skeleton length S
    8  S  skeleton: pickle (protocol 4) whose persistent ids describe the arrays
    .     zero padding to a multiple of 64
    D  .  data area: each array's bytes at a 64-byte aligned offset from D

numpy and torch are never imported here: an array can only be in the state if its library is
already loaded, so ``sys.modules`` tells which kinds to look for.
"""

from __future__ import annotations

import ctypes
import io
import pickle
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Tuple

from outlive.ckpt.device_copy import DeviceBatch, Pending, ops_for
from outlive.ckpt.fmt import Readable
from outlive.errors import CheckpointError

__all__ = ["ALIGN_BYTES", "BufferPool", "Plan", "Snapshot", "decode", "decode_file", "plan"]

PICKLE_PROTOCOL = 4
ALIGN_BYTES = 64
_LEN = struct.Struct(">Q")
_WRITE_CHUNK_BYTES = 8 * 1024 * 1024

# Persistent-id tags. A numpy array: (NP, offset, nbytes, dtype.str, shape, order).
# A torch tensor: (PT, offset, nbytes, dtype name, shape, requires_grad, is_parameter).
_NP = "outlive.ndarray"
_PT = "outlive.tensor"


def _align(n: int) -> int:
    return (n + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES


def _byte_view_of_array(array: Any) -> memoryview:
    """The bytes of a C- or F-contiguous numpy array, in memory order, without a copy."""
    flat = array.reshape(-1, order="A")
    return memoryview(flat.view("u1")) if flat.size else memoryview(b"")


def _byte_view_of_tensor(tensor: Any) -> memoryview:
    """The bytes of a contiguous CPU tensor, without a copy and without numpy."""
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes == 0:
        return memoryview(b"")
    raw = (ctypes.c_ubyte * nbytes).from_address(tensor.data_ptr())
    return memoryview(raw).cast("B")


@dataclass
class _Source:
    """One array or tensor found in the state, waiting to be copied."""

    kind: str  # _NP or _PT
    obj: Any
    offset: int
    nbytes: int
    order: str = "C"


@dataclass
class Snapshot:
    """A consistent copy of the state: the skeleton pickle and the arrays' bytes."""

    skeleton: bytes
    buffers: List[Tuple[int, Any]]  # (offset in the data area, owner of the bytes)
    payload_len: int
    pool_keys: List[Tuple[Any, ...]] = field(default_factory=list)
    pending: Pending = field(default_factory=Pending)  # device copies not yet landed

    def chunks(self) -> Iterator[memoryview]:
        """The payload, in pieces of at most a few MiB, in file order (once the copies landed)."""
        self.pending.wait()
        data_start = _align(_LEN.size + len(self.skeleton))
        yield memoryview(_LEN.pack(len(self.skeleton)))
        yield memoryview(self.skeleton)
        written = _LEN.size + len(self.skeleton)
        for offset, owner in self.buffers:
            gap = data_start + offset - written
            if gap:
                yield memoryview(bytes(gap))
            view = _bytes_of(owner)
            for start in range(0, len(view), _WRITE_CHUNK_BYTES):
                yield view[start : start + _WRITE_CHUNK_BYTES]
            written = data_start + offset + len(view)
        if written < self.payload_len:
            yield memoryview(bytes(self.payload_len - written))


def _bytes_of(owner: Any) -> memoryview:
    if type(owner).__module__ == "numpy":
        return _byte_view_of_array(owner)
    return _byte_view_of_tensor(owner)


class BufferPool:
    """Copies of the last snapshot kept for the next one: copying into memory that is already
    mapped avoids the page faults of a fresh allocation (and, for CUDA, re-pinning)."""

    def __init__(self) -> None:
        self._free: Dict[Tuple[Any, ...], List[Any]] = {}

    def take(self, key: Tuple[Any, ...]) -> Any | None:
        free = self._free.get(key)
        return free.pop() if free else None

    def give(self, snapshot: Snapshot) -> None:
        """Return a persisted snapshot's buffers; anything not reused by the next save is freed."""
        snapshot.pending.wait()  # a persist that failed early may not have waited for its copies
        self._free = {}
        for index, key in enumerate(snapshot.pool_keys):  # no zip(strict=): Python 3.8
            self._free.setdefault(key, []).append(snapshot.buffers[index][1])
        snapshot.buffers = []

    def clear(self) -> None:
        self._free = {}


class _SkeletonPickler(pickle.Pickler):
    def __init__(self, file: BinaryIO, ndarray: type | None, tensor_types: Tuple[type, ...]):
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self.sources: List[_Source] = []
        self.data_len = 0
        self._ndarray = ndarray
        self._tensor_types = tensor_types
        self._memo: Dict[int, Tuple[Any, ...]] = {}

    def persistent_id(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is self._ndarray:
            return self._array_id(obj)
        if cls in self._tensor_types:
            return self._tensor_id(obj)
        return None

    def _add(self, source: _Source, pid: Tuple[Any, ...]) -> Tuple[Any, ...]:
        self.sources.append(source)
        self._memo[id(source.obj)] = pid
        self.data_len = source.offset + source.nbytes
        return pid

    def _array_id(self, array: Any) -> Any:
        pid = self._memo.get(id(array))
        if pid is not None:
            return pid
        dtype = array.dtype
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            return None  # object or structured arrays: ordinary pickling copes
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        offset = _align(self.data_len)
        source = _Source(_NP, array, offset, int(array.nbytes), order)
        return self._add(source, (_NP, offset, source.nbytes, dtype.str, array.shape, order))

    def _tensor_id(self, tensor: Any) -> Any:
        pid = self._memo.get(id(tensor))
        if pid is not None:
            return pid
        torch = sys.modules["torch"]
        if (
            tensor.layout != torch.strided
            or tensor.is_quantized
            or tensor.is_nested
            or tensor.is_meta
            or tensor.dtype not in _TORCH_DTYPE_NAMES
        ):
            return None  # torch's own reducer handles the exotic ones (slower, still a copy)
        offset = _align(self.data_len)
        nbytes = tensor.numel() * tensor.element_size()
        source = _Source(_PT, tensor, offset, nbytes)
        is_param = isinstance(tensor, torch.nn.Parameter)
        pid = (
            _PT,
            offset,
            nbytes,
            _TORCH_DTYPE_NAMES[tensor.dtype],
            tuple(tensor.shape),
            bool(tensor.requires_grad),
            is_param,
        )
        return self._add(source, pid)


_TORCH_DTYPE_NAMES: Dict[Any, str] = {}


def _torch_dtype_names(torch: Any) -> Dict[Any, str]:
    if not _TORCH_DTYPE_NAMES:
        for name in dir(torch):
            value = getattr(torch, name, None)
            if isinstance(value, torch.dtype):
                _TORCH_DTYPE_NAMES.setdefault(value, str(value).replace("torch.", ""))
    return _TORCH_DTYPE_NAMES


class Plan:
    """The state's skeleton, pickled, and the arrays it refers to, not yet copied."""

    def __init__(self, skeleton: bytes, sources: List[_Source], data_len: int) -> None:
        self.skeleton = skeleton
        self.sources = sources
        self.payload_len = _align(_LEN.size + len(skeleton)) + data_len

    def snapshot(self, pool: BufferPool | None = None, pin_memory: bool = False) -> Snapshot:
        """Copy every array once into CPU memory that nothing else references.

        With ``pin_memory``, tensors on a device with ``DeviceOps`` (CUDA) are copied on a side
        stream into pinned buffers without blocking; the snapshot's ``pending`` events tell the
        writer when they have landed (``device_copy``)."""
        buffers: List[Tuple[int, Any]] = []
        keys: List[Tuple[Any, ...]] = []
        batch = DeviceBatch()
        try:
            for source in self.sources:
                if source.kind == _NP:
                    copy, key = _copy_array(source, pool)
                else:
                    copy, key = _copy_tensor(source, pool, batch if pin_memory else None)
                buffers.append((source.offset, copy))
                keys.append(key)
        except BaseException:
            batch.close().wait()  # leave no copy in flight into buffers about to be dropped
            raise
        return Snapshot(self.skeleton, buffers, self.payload_len, keys, batch.close())

    def direct(self) -> Snapshot:
        """Write straight from the live arrays where they are contiguous CPU memory (sync saves:
        the caller is blocked until the file is committed, so nothing can change them)."""
        buffers: List[Tuple[int, Any]] = []
        for source in self.sources:
            obj = source.obj
            if source.kind == _NP and (obj.flags.c_contiguous or obj.flags.f_contiguous):
                buffers.append((source.offset, obj))
            elif source.kind == _PT and obj.device.type == "cpu" and obj.is_contiguous():
                if obj.is_conj() or obj.is_neg():
                    obj = obj.resolve_conj().resolve_neg()
                buffers.append((source.offset, obj.detach()))
            elif source.kind == _NP:
                buffers.append((source.offset, _copy_array(source, None)[0]))
            else:  # a blocking copy_ (off the CPU, it waits for the device's queued work)
                buffers.append((source.offset, _copy_tensor(source, None, None)[0]))
        return Snapshot(self.skeleton, buffers, self.payload_len)


def _copy_array(source: _Source, pool: BufferPool | None) -> Tuple[Any, Tuple[Any, ...]]:
    array = source.obj
    key = (_NP, array.dtype.str, array.shape, source.order)
    copy = pool.take(key) if pool is not None else None
    if copy is None:
        np = sys.modules["numpy"]
        copy = np.empty(array.shape, dtype=array.dtype, order=source.order)
    copy[...] = array
    return copy, key


def _copy_tensor(
    source: _Source, pool: BufferPool | None, batch: DeviceBatch | None
) -> Tuple[Any, Tuple[Any, ...]]:
    """A host copy of the tensor: queued on a copy stream when ``batch`` is given and the
    tensor's device has ``DeviceOps`` (CUDA), else a blocking ``copy_``."""
    torch = sys.modules["torch"]
    tensor = source.obj.detach()
    ops = ops_for(tensor.device.type) if batch is not None else None
    key = (_PT, tensor.dtype, tuple(tensor.shape), ops is not None)
    copy = pool.take(key) if pool is not None else None
    if ops is None or batch is None:
        if copy is None:
            copy = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu")
        copy.copy_(tensor)
        return copy, key
    if copy is None:
        copy = ops.alloc_pinned(tensor)
    batch.copy(ops, tensor, copy)
    return copy, key


def plan(state: object) -> Plan:
    """Pickle ``state``'s skeleton; CheckpointError if it cannot be pickled."""
    numpy = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    ndarray = getattr(numpy, "ndarray", None)
    tensor_types: Tuple[type, ...] = ()
    if torch is not None and hasattr(torch, "Tensor"):
        _torch_dtype_names(torch)
        tensor_types = (torch.Tensor, torch.nn.Parameter)
    buffer = io.BytesIO()
    pickler = _SkeletonPickler(buffer, ndarray, tensor_types)
    try:
        pickler.dump(state)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"the state cannot be pickled ({exc}); save plain data "
            "(arrays, tensors, dicts, numbers) rather than open files, locks or lambdas."
        ) from exc
    return Plan(buffer.getvalue(), pickler.sources, pickler.data_len)


# -- reading back ---------------------------------------------------------------------------------

Fill = Callable[[int, memoryview], None]  # (offset in the data area, destination) -> None


class _SkeletonUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, fill: Fill) -> None:
        super().__init__(file)
        self._fill = fill
        self._loaded: Dict[Tuple[Any, ...], Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] not in (_NP, _PT):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        found = self._loaded.get(pid)
        if found is None:
            found = self._load_array(pid) if pid[0] == _NP else self._load_tensor(pid)
            self._loaded[pid] = found
        return found

    def _load_array(self, pid: Tuple[Any, ...]) -> Any:
        import numpy as np

        _, offset, nbytes, dtype, shape, order = pid
        array = np.empty(shape, dtype=np.dtype(dtype), order=order)
        if nbytes:
            self._fill(offset, _byte_view_of_array(array))
        return array

    def _load_tensor(self, pid: Tuple[Any, ...]) -> Any:
        import torch

        _, offset, nbytes, dtype, shape, requires_grad, is_param = pid
        tensor = torch.empty(shape, dtype=getattr(torch, dtype))
        if nbytes:
            self._fill(offset, _byte_view_of_tensor(tensor))
        if is_param:
            return torch.nn.Parameter(tensor, requires_grad=requires_grad)
        return tensor.requires_grad_(True) if requires_grad else tensor


def _skeleton_bounds(header: bytes) -> Tuple[int, int]:
    (skeleton_len,) = _LEN.unpack(header)
    return skeleton_len, _align(_LEN.size + skeleton_len)


def decode(payload: memoryview, version: int) -> Any:
    """The state held by a verified payload (bytes already in memory)."""
    if version == 1:
        return pickle.loads(payload)
    skeleton_len, data_start = _skeleton_bounds(bytes(payload[: _LEN.size]))
    skeleton = payload[_LEN.size : _LEN.size + skeleton_len]

    def fill(offset: int, dest: memoryview) -> None:
        start = data_start + offset
        dest[:] = payload[start : start + len(dest)]

    return _SkeletonUnpickler(io.BytesIO(skeleton), fill).load()


def decode_file(f: Readable, payload_start: int, version: int) -> Any:
    """The state of a verified file, read straight into each array's own memory."""
    f.seek(payload_start)
    if version == 1:
        return pickle.loads(f.read())
    skeleton_len, data_start = _skeleton_bounds(f.read(_LEN.size))
    skeleton = f.read(skeleton_len)

    def fill(offset: int, dest: memoryview) -> None:
        f.seek(payload_start + data_start + offset)
        done = 0
        while done < len(dest):
            n = f.readinto(dest[done:])
            if not n:
                raise CheckpointError("file ended inside an array (truncated after verification)")
            done += n

    return _SkeletonUnpickler(io.BytesIO(skeleton), fill).load()
