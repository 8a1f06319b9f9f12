"""Hugging Face ``Trainer``: save on the preemption flag through ``control.should_save``.

    from outlive.ckpt.integrations.hf import OutliveHFCallback, last_sealed_checkpoint

    args = TrainingArguments(output_dir=os.environ["OUTLIVE_CKPT_DIR"], save_total_limit=2, ...)
    trainer = Trainer(model, args, callbacks=[OutliveHFCallback()], ...)
    trainer.train(resume_from_checkpoint=last_sealed_checkpoint(args.output_dir))

A preemption signal only raises a flag. At the end of the next optimizer step the callback sets
``control.should_save`` and ``should_training_stop``; the Trainer writes its own checkpoint-N
(model, optimizer, scheduler, scaler, RNG states, trainer state), then ``on_save`` makes it
durable and exits with the requeue code 75. Between preemptions it asks for a save whenever the
cadence is due (Daly's interval from the measured save time and $OUTLIVE_MTBF_S, or
every_steps / every_s), on top of the Trainer's own ``save_strategy``.

The Trainer writes checkpoint-N in place, without fsync, and a kill mid-save leaves a torn
directory that ``resume_from_checkpoint=True`` would pick. ``on_save`` therefore fsyncs every file
and directory and then writes ``outlive-sealed.json`` (sizes, optionally SHA-256) atomically;
``last_sealed_checkpoint`` returns the newest directory whose seal still matches. Keep
``save_total_limit`` at 2 or more: the Trainer deletes older checkpoints before the new one is
sealed. transformers is imported when ``OutliveHFCallback`` is first used, not by this module.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List

from outlive.ckpt.cadence import Cadence
from outlive.ckpt.core import REQUEUE_EXIT_CODE
from outlive.ckpt.durable import commit_file, fsync_directory
from outlive.ckpt.signals import PreemptionFlag

# OutliveHFCallback is built on first access (module __getattr__): no transformers at import.
__all__ = ["SEAL_NAME", "OutliveHFCallback", "last_sealed_checkpoint", "seal_checkpoint"]  # noqa: F822

SEAL_NAME = "outlive-sealed.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_HASH_CHUNK_BYTES = 8 * 1024 * 1024

_log = logging.getLogger("outlive.ckpt")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SEAL_NAME)


def seal_checkpoint(folder: str | os.PathLike[str], *, hash_files: bool = False) -> Path:
    """fsync every file and directory of ``folder``, then commit its seal; returns the seal."""
    root = Path(folder)
    manifest: Dict[str, Dict[str, Any]] = {}
    for path in _files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # the Trainer's writes are in the page cache until now (U6)
        finally:
            os.close(fd)
        entry: Dict[str, Any] = {"size": path.stat().st_size}
        if hash_files:
            entry["sha256"] = _sha256(path)
        manifest[path.relative_to(root).as_posix()] = entry
    for directory in sorted({p.parent for p in _files(root)} | {root}, reverse=True):
        fsync_directory(directory)
    data = json.dumps({"files": manifest}, indent=1, sort_keys=True).encode()
    tmp = f".{SEAL_NAME}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    seal = commit_file(root, SEAL_NAME, tmp, [data])
    fsync_directory(root.parent)
    return seal


def _seal_holds(folder: Path, verify_hashes: bool) -> bool:
    try:
        manifest = json.loads((folder / SEAL_NAME).read_text())["files"]
        for name, entry in manifest.items():
            path = folder / name
            if path.stat().st_size != entry["size"]:
                return False
            if verify_hashes and "sha256" in entry and _sha256(path) != entry["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(manifest)


def last_sealed_checkpoint(
    output_dir: str | os.PathLike[str], *, verify_hashes: bool = False
) -> str | None:
    """The newest ``checkpoint-N`` under ``output_dir`` whose seal matches its files, or None."""
    root = Path(output_dir)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return None
    steps = sorted(
        (int(m.group(1)), name) for name in names if (m := _CHECKPOINT_RE.match(name)) is not None
    )
    for _, name in reversed(steps):
        folder = root / name
        if _seal_holds(folder, verify_hashes):
            return str(folder)
        _log.warning("skipping unsealed or torn Trainer checkpoint %s", folder)
    return None


class _HFHooks:
    """The callback's behaviour (the class is built with transformers' TrainerCallback base)."""

    def __init__(
        self,
        *,
        every_steps: int | None = None,
        every_s: float | None = None,
        mtbf_s: float | None = None,
        exit_on_preempt: bool = True,
        handle_signals: bool = True,
        hash_files: bool = False,
    ) -> None:
        self.cadence = Cadence(every_steps=every_steps, every_s=every_s, mtbf_s=mtbf_s)
        self.exit_on_preempt = exit_on_preempt
        self.hash_files = hash_files
        self.preempted_at_step: int | None = None
        self._flag = PreemptionFlag()
        if handle_signals:
            self._flag.install()
        self._save_asked_at: float | None = None

    @property
    def preempted(self) -> bool:
        """True once SIGTERM, SIGUSR1 or SIGUSR2 arrived."""
        return self._flag.is_set

    @property
    def requeue_exit_code(self) -> int:
        return REQUEUE_EXIT_CODE

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        step = int(state.global_step)
        if self._flag.is_set:
            # The end of an optimizer step is the safe point; the handler only set the flag.
            control.should_save = True
            control.should_training_stop = True
            self.preempted_at_step = step
        elif self.cadence.due(step):
            control.should_save = True
        if control.should_save:
            self._save_asked_at = time.monotonic()
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        step = int(state.global_step)
        if args.should_save:  # the process that writes (rank zero)
            folder = Path(args.output_dir) / f"checkpoint-{step}"
            if folder.is_dir():
                seal_checkpoint(folder, hash_files=self.hash_files)
        if self._save_asked_at is not None:
            self.cadence.record_persist(time.monotonic() - self._save_asked_at)
            self._save_asked_at = None
        self.cadence.record_save(step)
        if self.preempted_at_step is not None and self.exit_on_preempt:
            self._flag.restore()
            raise SystemExit(REQUEUE_EXIT_CODE)
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._flag.restore()
        return control


@functools.lru_cache(maxsize=1)  # not functools.cache: Python 3.8
def _callback_class() -> type:
    from transformers import TrainerCallback

    class OutliveHFCallback(_HFHooks, TrainerCallback):
        """Saves on the preemption flag and on the cadence via should_save; seals; exits 75."""

    return OutliveHFCallback


def __getattr__(name: str) -> Any:
    if name == "OutliveHFCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
