"""The Hugging Face Trainer callback with the real transformers on CPU (a tiny GPT-2 built from a
config, no hub): a real SIGTERM raises the flag, the callback asks the Trainer to save through
``should_save`` at the end of the step, seals the checkpoint and exits 75; resuming from the
newest sealed checkpoint ends with the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from outlive.ckpt.integrations.hf import SEAL_NAME, OutliveHFCallback, last_sealed_checkpoint

MAX_STEPS = 12


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 32, (16, 8), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class SignalAt(TrainerCallback):
    """Sends this process SIGTERM when a given step begins, as a spot reclaimer would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _trainer(output_dir: Path, callbacks: list[Any]) -> Trainer:
    config = GPT2Config(
        vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.1
    )
    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        save_strategy="no",  # only the callback asks for saves here
        save_total_limit=2,
        report_to=[],
        use_cpu=True,
        seed=42,
        disable_tqdm=True,
        logging_strategy="no",
    )
    return Trainer(
        model=GPT2LMHeadModel(config), args=args, train_dataset=Tokens(), callbacks=callbacks
    )


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_sigterm_saves_through_should_save_exits_75_and_resume_ends_identical(
    tmp_path: Path,
) -> None:
    reference = _trainer(tmp_path / "reference", [])
    reference.train()
    expected = _weights(reference)

    handler_before = signal.getsignal(signal.SIGTERM)
    output = tmp_path / "run"
    callback = OutliveHFCallback(every_steps=3)
    interrupted = _trainer(output, [callback, SignalAt(step=7)])
    with pytest.raises(SystemExit) as exited:
        interrupted.train(resume_from_checkpoint=last_sealed_checkpoint(output))
    assert exited.value.code == 75 and callback.preempted_at_step == 8
    assert signal.getsignal(signal.SIGTERM) == handler_before
    sealed = last_sealed_checkpoint(output, verify_hashes=True)
    assert sealed == str(output / "checkpoint-8")
    assert (output / "checkpoint-8" / SEAL_NAME).exists()
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]

    callback = OutliveHFCallback(every_steps=3)
    resumed = _trainer(output, [callback])
    resumed.train(resume_from_checkpoint=last_sealed_checkpoint(output))
    assert resumed.state.global_step == MAX_STEPS and callback.preempted_at_step is None
    got = _weights(resumed)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
