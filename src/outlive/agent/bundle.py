"""The job library: the stdlib-only part of outlive that a job imports (``Checkpointer``,
``progress``), materialised next to the runs by content hash and put on the job's PYTHONPATH,
so a box needs nothing installed and never runs a stale copy (U42)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # .../outlive


def bundle_files() -> list[tuple[str, Path]]:
    """(path inside the bundle, source file) for every file the job library needs."""
    files = [("outlive/__init__.py", _PACKAGE / "__init__.py")]
    files.append(("outlive/errors.py", _PACKAGE / "errors.py"))
    files.append(("outlive/py.typed", _PACKAGE / "py.typed"))
    for src in sorted((_PACKAGE / "ckpt").rglob("*.py")):
        files.append((f"outlive/{src.relative_to(_PACKAGE).as_posix()}", src))
    return files


def bundle_hash() -> str:
    h = hashlib.sha256()
    for rel, src in bundle_files():
        h.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def materialize(root: Path) -> Path:
    """Write the bundle under ``root/<hash>/`` once (atomically); return that directory."""
    dest = root / bundle_hash()
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=root))
    try:
        for rel, src in bundle_files():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise
    return dest
