"""What every command prints with: one JSON document on stdout (``--json``), a line for a human,
a one-sentence note on stderr, a rich console (imported only when a human reads the output)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, TextIO

from outlive.cli._terminal import printable

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console


def emit_json(data: object, out: TextIO | None = None) -> None:
    """Exactly one JSON document, on one line, on ``out`` (stdout by default)."""
    out = sys.stdout if out is None else out
    out.write(json.dumps(data, default=str) + "\n")
    out.flush()


def echo(text: str) -> None:
    """A line for a human on stdout (what a terminal would act on in it shown escaped)."""
    sys.stdout.write(printable(text) + "\n")
    sys.stdout.flush()


def note(message: str, err: TextIO | None = None) -> None:
    """A one-sentence message on stderr (or ``err``), prefixed as every error of outlive's is;
    a name, a path or a box's words in it cannot drive the terminal (``cli._terminal``)."""
    err = sys.stderr if err is None else err
    err.write(f"outlive: {printable(message)}\n")
    err.flush()


def write_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temp file renamed over it): a full disk or a kill
    mid-write leaves what was there, never a truncated file; a failure is one sentence."""
    import contextlib
    import os

    from outlive.errors import OutliveError

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutliveError(
            f"could not write {path} ({exc.strerror or exc}); it is as it was: free some space "
            "or check the directory's permissions, then run the same command again"
        ) from None


def console() -> Console:
    """A rich console on stdout without highlighting, soft-wrapping long lines."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def size(n: float | None) -> str:
    """``n`` bytes in binary units, for people."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover
