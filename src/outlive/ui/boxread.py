"""The dashboard's reads of a run's progress on the box: one ``tail`` agent call each, its raw
bytes fed to the page's buffer as they come out of the agent (no channel held open)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from outlive import wire

if TYPE_CHECKING:
    from outlive.backends.base import Backend
    from outlive.ui.progress import ProgressFrames, ProgressLines

LOOK_TIMEOUT_S = 15.0
CHUNK_BYTES = 16 << 20


class _Fed(Protocol):
    offset: int

    def feed(self, chunk: bytes) -> None: ...


class _Grows(_Fed, Protocol):
    complete: bool


G = TypeVar("G", bound=_Grows)


def grow(buf: G, read: Callable[[G], tuple[int, bool]], replaced: Callable[[], G]) -> G:
    """``read`` into ``buf`` until it has caught up with the file (chunk after chunk), and
    ``complete`` once the run has ended and all is read; a file that shrank (was replaced) is
    read again from its start into ``replaced()``."""
    while not buf.complete:
        start = buf.offset
        size, ended = read(buf)
        if buf.offset < start:
            buf = replaced()
            continue
        if buf.offset - start < CHUNK_BYTES:
            buf.complete = ended and buf.offset >= size
            break
    return buf


def streams(backend: Backend) -> bool:
    """Whether ``backend`` reads through the agent's own ``tail`` (read as it arrives, and it
    knows the frames file); other platforms read through their own ``tail``."""
    from outlive.backends.base import AgentBackend

    return isinstance(backend, AgentBackend) and type(backend).tail is AgentBackend.tail


def _fed(
    backend: Backend,
    run_dir: str,
    name: str,
    buf: _Fed,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, bool]:
    """One raw ``tail`` of ``name`` from ``buf.offset``, its bytes fed to ``buf`` as they come
    out of the agent (``on_result`` sees the reply's result first); the file's size and
    whether the run ended. A file that shrank (replaced) leaves ``buf.offset`` where it now
    ends."""
    start = buf.offset
    request = {"run_dir": run_dir, "file": name, "offset": start, "max_bytes": CHUNK_BYTES}
    agent = backend.agent  # type: ignore[attr-defined]  # an AgentBackend: streams()
    result, pieces = agent.call_streamed("tail", request, timeout_s=LOOK_TIMEOUT_S)
    end = int(result["offset"])
    size, ended = int(result.get("size") or 0), bool(result["ended"])
    if end < start:
        for _ in pieces:  # the file is shorter now: nothing (the agent read from its end)
            pass
        buf.offset = end
        return size, ended
    if on_result is not None:
        on_result(result)
    if "data_b64" in result:  # an agent that predates raw
        pieces = iter((base64.b64decode(result["data_b64"]),))
    for piece in pieces:
        buf.feed(piece)
    buf.offset = end
    return size, ended


def read_lines(backend: Backend, run_dir: str, lines: ProgressLines) -> tuple[int, bool]:
    """One ``tail`` of the progress file from ``lines.offset`` into ``lines``, fed as the bytes
    come; the file's size and whether the run ended. A file that shrank (replaced) leaves
    ``lines.offset`` where the file now ends."""
    if not streams(backend):
        start = lines.offset
        chunk = backend.tail(
            run_dir,
            offset=start,
            max_bytes=CHUNK_BYTES,
            timeout_s=LOOK_TIMEOUT_S,
            file=wire.PROGRESS_JSONL,
        )
        if chunk.offset >= start:
            lines.feed(chunk.data)
        lines.offset = chunk.offset
        return chunk.size, chunk.ended
    return _fed(backend, run_dir, wire.PROGRESS_JSONL, lines)


def read_frames(backend: Backend, run_dir: str, frames: ProgressFrames) -> tuple[int, bool]:
    """One ``tail`` of the frames file from ``frames.offset`` into ``frames`` (whose
    ``lines_size`` and ``size`` are set before the bytes come); its size and whether the run
    ended. Only where :func:`streams`."""

    def told(result: dict[str, Any]) -> None:
        frames.known(int(result.get("lines_size") or 0), int(result.get("size") or 0))

    return _fed(backend, run_dir, wire.PROGRESS_BIN, frames, told)
