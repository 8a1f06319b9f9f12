"""The Lightning callback with the real Lightning on CPU: a real SIGTERM during training only raises
the flag; the callback saves at the next batch boundary through Lightning's own checkpoint path,
exits 75, and a relaunch resumes from that outlive file via ``ckpt_path``."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from outlive import Checkpointer
from outlive.ckpt.integrations.lightning import OutliveCallback

pytestmark = [
    # Lightning 2.6 on torch 2.13: torch's pytree deprecation, inside Lightning's CombinedLoader.
    pytest.mark.filterwarnings(
        "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"
    ),
    pytest.mark.filterwarnings("ignore:The `srun` command is available on your system"),
    pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before"),
    pytest.mark.filterwarnings("ignore:Checkpoint directory .*/mc exists and is not empty"),
]

MAX_STEPS = 20


class Toy(L.LightningModule):
    def __init__(self, signal_at_step: int | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.signal_at_step = signal_at_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.signal_at_step:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-step, as a real preemption would
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)]


class StartRecorder(Callback):
    def __init__(self) -> None:
        self.global_step: int | None = None
        self.weight: torch.Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.global_step = trainer.global_step
        self.weight = pl_module.net.weight.detach().clone()  # type: ignore[union-attr]


def _loader() -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)


def _trainer(callbacks: list[Callback], root: Path) -> L.Trainer:
    return L.Trainer(
        max_steps=MAX_STEPS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        callbacks=callbacks,
        default_root_dir=root,
    )


def test_sigterm_saves_at_the_batch_boundary_exits_75_and_the_relaunch_resumes(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    handlers_before = signal.getsignal(signal.SIGTERM)
    ckpt = Checkpointer(tmp_path / "ckpt", every_steps=4)
    callback = OutliveCallback(ckpt)
    model = Toy(signal_at_step=9)
    model_checkpoint = ModelCheckpoint(dirpath=tmp_path / "mc", every_n_train_steps=5)
    try:
        with pytest.raises(SystemExit) as exited:
            _trainer([callback, model_checkpoint], tmp_path).fit(model, _loader())
    finally:
        ckpt.close()
    assert exited.value.code == 75
    assert signal.getsignal(signal.SIGTERM) == handlers_before
    # The signal came during step 9's batch; the save came after it, at global step 10.
    assert callback.preempted_at_step == 10
    assert ckpt.steps() == [4, 8, 10]  # periodic saves from due(), then the preemption save
    saved = ckpt.load(10).state
    assert saved["global_step"] == 10
    assert torch.equal(saved["state_dict"]["net.weight"], model.net.weight.detach())
    assert saved["optimizer_states"][0]["state"]  # momentum buffers travel too
    # Lightning's own ModelCheckpoint still writes plain torch files through the inner IO.
    (regular,) = sorted((tmp_path / "mc").glob("*.ckpt"))
    assert torch.load(regular, weights_only=False)["global_step"] == 5

    ckpt = Checkpointer(tmp_path / "ckpt", every_steps=4)
    callback = OutliveCallback(ckpt)
    recorder = StartRecorder()
    resumed = Toy()
    model_checkpoint = ModelCheckpoint(dirpath=tmp_path / "mc", every_n_train_steps=5)
    trainer = _trainer([callback, recorder, model_checkpoint], tmp_path)
    try:
        assert callback.resume_path() == str(ckpt.path_for(10))
        trainer.fit(resumed, _loader(), ckpt_path=callback.resume_path())
    finally:
        ckpt.close()
    assert recorder.global_step == 10
    assert recorder.weight is not None and torch.equal(
        recorder.weight, saved["state_dict"]["net.weight"]
    )
    assert trainer.global_step == MAX_STEPS and callback.preempted_at_step is None
    assert ckpt.steps()[-1] == MAX_STEPS - MAX_STEPS % 4


def test_a_fresh_start_has_no_resume_path_and_trains_to_the_end(tmp_path: Path) -> None:
    with Checkpointer(tmp_path / "ckpt", handle_signals=False, every_steps=10) as ckpt:
        callback = OutliveCallback(ckpt)
        assert callback.resume_path() is None
        trainer = _trainer([callback], tmp_path)
        trainer.fit(Toy(), _loader(), ckpt_path=callback.resume_path())
    assert trainer.global_step == MAX_STEPS and ckpt.steps() == [10, 20]
