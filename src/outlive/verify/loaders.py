"""Loading checkpoints to prove them: outlive ``.ckpt`` through the Checkpointer, ``.npz`` /
``.npy`` with numpy (no pickles), safetensors parsed with the standard library, torch files
with ``torch.load(weights_only=True)`` when torch is installed. numpy and torch are imported
only when such a file is met."""

from __future__ import annotations

import json
import os
from pathlib import Path

SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024
# Why a torch file's load check was skipped (it is then proven by its SHA-256 alone).
TORCH_MISSING = "torch not installed"
_DETAIL_CHARS = 300

# Bytes per element of the safetensors dtypes (F4 packs two elements per byte: handled apart).
_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_OUTLIVE_CKPT_MAGIC = b"\x89OLCKPT\n"


def _clip(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def loader_kind(path: Path) -> str | None:
    """Which loader proves this file, by its name (and first bytes for ``.ckpt``)."""
    name = path.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith((".pt", ".pth")) or (
        name.startswith("pytorch_model") and name.endswith(".bin")
    ):
        return "torch"
    if name.endswith(".ckpt"):
        # A Lightning ``.ckpt`` is a torch file; ours starts with the outlive magic.
        try:
            with open(path, "rb") as f:
                head = f.read(len(_OUTLIVE_CKPT_MAGIC))
        except OSError:
            return "outlive-ckpt"
        return "outlive-ckpt" if head == _OUTLIVE_CKPT_MAGIC else "torch"
    return None


def check_load(path: Path) -> tuple[str | None, bool | None, str | None]:
    """(loader, loaded?, detail). ``loaded`` is None when the file is not a checkpoint, or when
    its loader cannot be imported here (``detail`` then says why the load check was skipped,
    e.g. "torch not installed"); False names why it does not load."""
    kind = loader_kind(path)
    if kind is None:
        return None, None, None
    try:
        if kind == "outlive-ckpt":
            _load_outlive_ckpt(path)
        elif kind == "npz":
            _load_npz(path)
        elif kind == "npy":
            _load_npy(path)
        elif kind == "safetensors":
            problem = check_safetensors(path)
            if problem is not None:
                return kind, False, problem
        else:
            missing = _load_torch(path)
            if missing is not None:
                return kind, None, missing
    except Exception as exc:
        return kind, False, _clip(exc)
    return kind, True, None


def _load_outlive_ckpt(path: Path) -> None:
    # A .ckpt holds a pickle: loading it runs what the job put in it, exactly as the job's own
    # resume does. The Checkpointer checks the header and check value before it unpickles.
    from outlive.ckpt import fmt

    step = fmt.parse_checkpoint_name(path.name)
    if step is not None:
        _load_step(path.parent, step)
        return
    # Renamed by the user (best.ckpt): verified and unpickled by path, streamed, as the
    # integrations load one (it was read whole into memory first: a 20 GB file, 20 GB).
    from outlive.ckpt.reader import read_file

    read_file(path)


def _load_step(directory: Path, step: int) -> None:
    from outlive.ckpt import Checkpointer

    ckpt = Checkpointer(directory, keep_last=None, handle_signals=False)
    try:
        ckpt.load(step)
    finally:
        ckpt.close()


def _load_npz(path: Path) -> None:
    import numpy as np

    # Reading every member in full makes zipfile check each CRC; no pickles are allowed. The
    # file is opened here so that a broken archive cannot leak numpy's handle.
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
        for key in archive.files:
            archive[key]


def _load_npy(path: Path) -> None:
    import numpy as np

    # The header must parse and the data after it must be exactly shape x itemsize bytes,
    # checked without reading a multi-GB array into memory.
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise ValueError("holds Python objects (a pickle), which are not loaded")
        count = 1
        for d in shape:
            count *= int(d)
        want = count * dtype.itemsize
        have = os.fstat(f.fileno()).st_size - f.tell()
        if have != want:
            raise ValueError(f"{have} data bytes for {dtype} {tuple(shape)} (expected {want})")


def _load_torch(path: Path) -> str | None:
    """Load a torch file; returns why it could not be tried (torch not importable here), or
    None once it loaded. A torch that is absent or whose import fails is a skipped check, not a
    broken file: the file is still proven by its SHA-256."""
    import importlib.util

    try:
        if importlib.util.find_spec("torch") is None:
            return TORCH_MISSING
        import torch
    except (ImportError, OSError) as exc:  # OSError: a broken install's missing libraries
        if isinstance(exc, ModuleNotFoundError) and exc.name == "torch":
            return TORCH_MISSING
        return f"torch cannot be imported here ({_clip(exc)})"
    torch.load(str(path), map_location="cpu", weights_only=True)
    return None


def check_safetensors(path: Path) -> str | None:
    """Parse a safetensors file with the standard library: an 8-byte little-endian header
    length, a JSON header, then the data. Every tensor's offsets must lie in the data, its size
    must match dtype x shape, and the tensors must tile the data with no gap or overlap.
    Returns None when it holds, else why not."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes is too short for a safetensors header"
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > SAFETENSORS_MAX_HEADER_BYTES:
            return f"the header claims {n} bytes but the file holds {size - 8} after it"
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"the header is not JSON ({exc})"
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    data_len = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "__metadata__ must map strings to strings"
            continue
        if not isinstance(info, dict):
            return f"tensor {name!r}: its entry is not an object"
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if (
            not isinstance(shape, list)
            or not all(_is_count(d) for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
        ):
            return f"tensor {name!r}: shape or data_offsets malformed"
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            return (
                f"tensor {name!r}: data_offsets [{begin}, {end}] outside the {data_len} data bytes"
            )
        count = 1
        for d in shape:
            count *= d
        want: int | None
        if dtype == "F4":
            want = (count + 1) // 2
        else:
            per = _SAFETENSORS_DTYPE_BYTES.get(str(dtype))
            want = None if per is None else count * per
        if want is not None and end - begin != want:
            return f"tensor {name!r}: {end - begin} bytes for {dtype} {shape} (expected {want})"
        spans.append((begin, end, name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            what = "a gap before" if begin > pos else "an overlap at"
            return f"{what} tensor {name!r} (offset {begin}, expected {pos})"
        pos = end
    if pos != data_len:
        return f"{data_len - pos} bytes after the last tensor belong to none"
    return None


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
