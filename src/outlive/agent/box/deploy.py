"""The deploy check (U42): the box runs only the code the user has locally. Also ``expand``."""

from __future__ import annotations

import hashlib
import os
from typing import List, Tuple

from .common import Rec, expand


def sha256_counted(path: str) -> Tuple[str, int]:
    """SHA-256 and the number of bytes actually read (a file still being written shows here);
    streamed in 1 MiB blocks, so multi-GB files take bounded memory."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def sha256_file(path: str) -> str:
    """Streamed SHA-256 (bounded memory for multi-GB files)."""
    return sha256_counted(path)[0]


def check_deploy(workdir: str, manifest: Rec) -> List[str]:
    """Files of the deploy manifest that are missing or differ on the box (U42)."""
    problems = []
    for rel, want in sorted(manifest.items()):
        if rel.startswith("/") or ".." in rel.split("/"):
            problems.append(f"{rel!r}: not a relative path inside the workdir")
            continue
        path = os.path.join(workdir, rel)
        try:
            size = os.path.getsize(path)
        except OSError:
            problems.append(f"{rel!r} is missing on the box")
            continue
        if size != want["size"] or sha256_file(path) != want["sha256"]:
            problems.append(f"{rel!r} differs on the box")
    return problems


def verb_verify_deploy(req: Rec) -> Rec:
    return {"problems": check_deploy(expand(str(req["workdir"])), req.get("manifest") or {})}


def verb_expand(req: Rec) -> Rec:
    return {"paths": [expand(str(p)) for p in req.get("paths") or []]}
