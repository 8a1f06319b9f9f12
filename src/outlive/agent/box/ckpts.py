"""``ckpts``: the committed checkpoints in a run's durable directory (name, step, size, mtime),
read-only and without opening a file, so a dashboard can list them on every look."""

from __future__ import annotations

import os
import re
from typing import List

from .common import Rec, expand

# The Checkpointer's committed names (``outlive.ckpt.fmt.checkpoint_name``); temp files and
# anything else in the directory are not checkpoints.
_NAME_RE = re.compile(r"^step-(\d{12,})\.ckpt$")
CKPTS_MAX = 1000  # newest first; a directory holding more is cut here


def verb_ckpts(req: Rec) -> Rec:
    ckpt_dir = expand(str(req["ckpt_dir"]))
    found: List[Rec] = []
    try:
        entries = list(os.scandir(ckpt_dir))
    except OSError:
        return {"ckpt_dir": ckpt_dir, "checkpoints": [], "exists": False}
    for entry in entries:
        match = _NAME_RE.match(entry.name)
        if not match:
            continue
        try:
            st = entry.stat()
        except OSError:
            continue  # pruned between the listing and the stat
        found.append(
            {
                "name": entry.name,
                "step": int(match.group(1)),
                "size_bytes": st.st_size,
                "mtime": st.st_mtime,
            }
        )
    found.sort(key=lambda c: c["step"], reverse=True)
    return {"ckpt_dir": ckpt_dir, "checkpoints": found[:CKPTS_MAX], "exists": True}
