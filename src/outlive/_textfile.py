"""A text file named on the command line (a sweep file, its items, a queue, requirements) read
whole but bounded: /dev/zero or a multi-GiB file given by mistake is one sentence, never memory
filled. OSError and UnicodeDecodeError reach the caller, which names the file its own way."""

from __future__ import annotations

from pathlib import Path

from outlive.errors import UsageError

MAX_BYTES = 16 << 20  # far above any sweep, queue or requirements file


def read_text(path: Path, what: str, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path`` (``what`` names it in the sentence), at most ``limit`` bytes."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UsageError(
            f"{what} {path} holds more than {limit >> 20} MiB, more than one can; is it the "
            "right file?"
        )
    return data.decode("utf-8")
