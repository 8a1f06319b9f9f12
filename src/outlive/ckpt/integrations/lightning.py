"""PyTorch Lightning: save on the preemption flag at a batch boundary, resume from outlive files.

    from outlive import Checkpointer
    from outlive.ckpt.integrations.lightning import OutliveCallback

    ckpt = Checkpointer()              # before trainer.fit: the signals go to its flag
    callback = OutliveCallback(ckpt)
    trainer = L.Trainer(callbacks=[callback], ...)
    trainer.fit(model, datamodule, ckpt_path=callback.resume_path())   # None on a fresh start

Lightning's SLURM auto-requeue saves inside the SIGUSR1 handler (Lightning #21406: intermittent
hangs, corrupt ``hpc_ckpt`` files). With a Checkpointer's handlers installed first, Lightning
leaves SIGUSR1 alone and chains SIGTERM to ours, so a signal only raises the flag. The callback
then saves at the end of the next training batch: Lightning's own full checkpoint (model,
optimizers, schedulers, loops, callbacks, precision / GradScaler state) through
``Checkpointer.emergency_save``, and exits with the requeue code 75 (Lightning's own SIGTERM path
would exit 0 at the end of the epoch, which looks like success). Between preemptions it saves
whenever ``Checkpointer.due(global_step)`` says so (Daly's interval, or every_steps / every_s).

``setup`` wraps the strategy's CheckpointIO so that ``ckpt_path`` may name an outlive file
(its check value verified before it is unpickled); any other path goes to the original CheckpointIO,
so ModelCheckpoint and friends are unchanged. Lightning is imported when ``OutliveCallback`` is
first used, never by importing this module.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive.ckpt import fmt
from outlive.ckpt.reader import is_checkpoint_file, read_file

if TYPE_CHECKING:
    from outlive.ckpt.core import Checkpointer

# The classes are built on first access (module __getattr__), so that importing this module
# does not import Lightning.
__all__ = ["OutliveCallback", "OutliveCheckpointIO"]  # noqa: F822


class _IOHooks:
    """The CheckpointIO wrapper's behaviour (the class itself is built with Lightning's base)."""

    def __init__(self, inner: Any, checkpointer: Checkpointer) -> None:
        self.inner = inner
        self.checkpointer = checkpointer
        self.emergency = False

    def _step_for(self, path: Any) -> int | None:
        target = Path(path).expanduser().absolute()
        if target.parent != self.checkpointer.directory:
            return None
        return fmt.parse_checkpoint_name(target.name)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        step = self._step_for(path)
        if step is None:
            self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
        elif self.emergency:
            self.checkpointer.emergency_save(checkpoint, step=step)
        else:
            self.checkpointer.save(checkpoint, step=step)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # An outlive file is a verified pickle: map_location / weights_only do not apply, and
        # its tensors come back on the CPU (Lightning moves them to the model's device).
        if is_checkpoint_file(path):
            loaded = read_file(path).state
        else:
            loaded = self.inner.load_checkpoint(
                path, map_location=map_location, weights_only=weights_only
            )
        checkpoint: dict[str, Any] = loaded  # Lightning's own checkpoint dict, whatever it holds
        return checkpoint

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()


class _CallbackHooks:
    """The callback's behaviour (the class itself is built with Lightning's ``Callback`` base)."""

    def __init__(
        self,
        checkpointer: Checkpointer,
        *,
        exit_on_preempt: bool = True,
        save_when_due: bool = True,
    ) -> None:
        self.checkpointer = checkpointer
        self.exit_on_preempt = exit_on_preempt
        self.save_when_due = save_when_due
        self.preempted_at_step: int | None = None

    def resume_path(self) -> str | None:
        """The newest checkpoint that verifies, for ``trainer.fit(ckpt_path=...)``; None if none."""
        path = self.checkpointer.latest_path()
        return str(path) if path is not None else None

    def _io(self, trainer: Any) -> Any:
        strategy = trainer.strategy
        current = strategy.checkpoint_io
        if isinstance(current, _IOHooks):
            if current.checkpointer is self.checkpointer:
                return current
            current = current.inner  # another Checkpointer's wrapper: replace, do not stack
        strategy.checkpoint_io = _io_class()(current, self.checkpointer)
        return strategy.checkpoint_io

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._io(trainer)  # before Lightning restores ckpt_path, which may be an outlive file

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        ckpt = self.checkpointer
        step = int(trainer.global_step)
        if ckpt.preempted:
            # A batch boundary is a safe point: nothing is mid-backward or mid-optimizer-step.
            self._save(trainer, step, emergency=True)
            self.preempted_at_step = step
            trainer.should_stop = True
            if self.exit_on_preempt:
                ckpt.flush()
                raise SystemExit(ckpt.requeue_exit_code)
        elif self.save_when_due and ckpt.due(step):
            self._save(trainer, step, emergency=False)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.checkpointer.flush()

    def _save(self, trainer: Any, step: int, *, emergency: bool) -> None:
        io = self._io(trainer)
        io.emergency = emergency
        try:
            # Through Lightning's own path: the full checkpoint dict, on global rank zero only.
            trainer.save_checkpoint(str(self.checkpointer.path_for(step)))
        finally:
            io.emergency = False


@functools.lru_cache(maxsize=1)  # not functools.cache: Python 3.8
def _io_class() -> type:
    from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

    class OutliveCheckpointIO(_IOHooks, CheckpointIO):
        """Saves paths in the Checkpointer's directory through it; loads outlive files."""

    return OutliveCheckpointIO


@functools.lru_cache(maxsize=1)  # not functools.cache: Python 3.8
def _callback_class() -> type:
    from lightning.pytorch.callbacks import Callback

    class OutliveCallback(_CallbackHooks, Callback):
        """Saves on the preemption flag at a batch boundary and on ``due()``; exits 75."""

    return OutliveCallback


def __getattr__(name: str) -> Any:
    if name == "OutliveCallback":
        return _callback_class()
    if name == "OutliveCheckpointIO":
        return _io_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
