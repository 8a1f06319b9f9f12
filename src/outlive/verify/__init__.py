"""Prove a pulled tree: it matches its manifest exactly, and every checkpoint in it loads.

"Pulled" is a claim about artifacts, never about a log line (U33). A pulled directory is::

    <dest>/PULL_VERIFIED.json        written only after a verification passed
    <dest>/.outlive/pull.json        which run, target and result roots, which manifest
    <dest>/.outlive/manifests/H.json the box's manifest; its SHA-256 is H (its own name)
    <dest>/ckpt/...                  the run's durable checkpoint directory
    <dest>/out/<path>/...            each declared output path (relative to the workdir)

Verification checks the roster (no file missing, no file extra), each size and SHA-256, each
symlink's target, and loads every checkpoint: outlive ``.ckpt`` files through the Checkpointer
(header, SHA-256 trailer, unpickle), ``.npz`` / ``.npy`` with numpy (no pickles), safetensors
by parsing the header with the standard library (offsets, sizes, no gaps), and torch files with
``torch.load(weights_only=True)`` when torch is installed (otherwise they are checked by hash
only, and the report says so). numpy and torch are imported only when such a file is found.
"""

from __future__ import annotations

from outlive._hashing import hash_file
from outlive.verify.loaders import check_load, check_safetensors, loader_kind
from outlive.verify.manifest import (
    MANIFEST_FORMAT,
    Entry,
    Manifest,
    canonical_bytes,
    check_inside,
    check_rel_path,
    check_tree_paths,
    local_path,
)
from outlive.verify.records import (
    MANIFESTS_DIR,
    PULL_INFO,
    VERIFIED_FORMAT,
    invalidate_verified,
    load_manifest,
    manifest_path,
    meta_dir,
    read_pull_info,
    read_verified,
    store_manifest,
    verify_dir,
    write_json_atomic,
    write_verified,
)
from outlive.verify.tree import (
    MAX_WORKERS,
    META_DIR,
    VERIFIED_NAME,
    FileResult,
    Report,
    check_file,
    judge,
    local_roster,
    observe_file,
    reusable,
    verify_tree,
)

__all__ = [
    "MANIFESTS_DIR",
    "MANIFEST_FORMAT",
    "MAX_WORKERS",
    "META_DIR",
    "PULL_INFO",
    "VERIFIED_FORMAT",
    "VERIFIED_NAME",
    "Entry",
    "FileResult",
    "Manifest",
    "Report",
    "canonical_bytes",
    "check_file",
    "check_inside",
    "check_load",
    "check_rel_path",
    "check_safetensors",
    "check_tree_paths",
    "hash_file",
    "invalidate_verified",
    "judge",
    "load_manifest",
    "loader_kind",
    "local_path",
    "local_roster",
    "manifest_path",
    "meta_dir",
    "observe_file",
    "read_pull_info",
    "read_verified",
    "reusable",
    "store_manifest",
    "verify_dir",
    "verify_tree",
    "write_json_atomic",
    "write_verified",
]
