"""torch tensors in checkpoints: snapshot semantics, dtypes, aliasing, and full training state."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from outlive import Checkpointer
from outlive.ckpt import capture_training_state, restore_training_state


def _ckpt(directory: Path, **kwargs: object) -> Checkpointer:
    return Checkpointer(directory, handle_signals=False, **kwargs)  # type: ignore[arg-type]


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and torch.equal(
            a.detach().reshape(-1).view(torch.uint8), b.detach().reshape(-1).view(torch.uint8)
        )
    )


@pytest.mark.parametrize("sync", [False, True])
def test_tensors_of_every_common_kind_round_trip_bit_for_bit(tmp_path: Path, sync: bool) -> None:
    base = torch.randn(6, 5)
    state = {
        "f32": base,
        "alias": base,  # the same tensor twice comes back as one tensor
        "transposed": base.t(),  # a non-contiguous view
        "bf16": torch.randn(7, dtype=torch.bfloat16),
        "f16": torch.randn(3, 3, dtype=torch.float16),
        "i64": torch.arange(10),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.empty(0, 4),
        "u8": torch.randint(0, 255, (9,), dtype=torch.uint8),
        "c64": torch.randn(4, dtype=torch.complex64),
    }
    ckpt = _ckpt(tmp_path, sync=sync)
    ckpt.save(state, step=1)
    got = ckpt.load(1).state
    for key, value in state.items():
        assert _same_bits(got[key], value.contiguous()), key
    assert got["alias"] is got["f32"]


def test_parameters_requires_grad_conj_and_sparse_tensors(tmp_path: Path) -> None:
    param = nn.Parameter(torch.randn(3))
    leaf = torch.randn(2, requires_grad=True)
    conj = torch.randn(3, dtype=torch.complex64).conj()  # a lazy conjugate bit
    sparse = torch.eye(4).to_sparse()  # not strided: torch's own reducer
    ckpt = _ckpt(tmp_path)
    ckpt.save({"p": param, "leaf": leaf, "conj": conj, "sparse": sparse}, step=2)
    got = ckpt.load(2).state
    assert isinstance(got["p"], nn.Parameter) and got["p"].requires_grad
    assert _same_bits(got["p"], param) and got["leaf"].requires_grad and got["leaf"].is_leaf
    assert torch.equal(got["conj"], conj.resolve_conj())
    assert torch.equal(got["sparse"].to_dense(), torch.eye(4))


def test_the_snapshot_is_a_copy_so_the_next_optimizer_step_cannot_tear_it(tmp_path: Path) -> None:
    weights = torch.zeros(512, 512)
    ckpt = _ckpt(tmp_path, keep_last=None)
    for step in range(1, 4):
        weights.add_(1.0)  # in place, as an optimizer does, while the last persist may still run
        ckpt.save({"w": weights}, step=step)
        weights.add_(100.0)
        weights.sub_(100.0)
    for step in range(1, 4):
        assert torch.equal(ckpt.load(step).state["w"], torch.full((512, 512), float(step)))


def _toy() -> tuple[nn.Module, AveragedModel, torch.optim.Optimizer, object, object]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))  # type: ignore[no-untyped-call]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=2)
    return model, ema, optimizer, scheduler, scaler


def _steps(
    objects: tuple[nn.Module, AveragedModel, torch.optim.Optimizer, object, object], n: int
) -> None:
    model, ema, optimizer, scheduler, scaler = objects
    for _ in range(n):
        x = torch.randn(16, 4)  # from the global RNG, like dropout: the RNG is state too
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        scaler.scale(loss).backward()  # type: ignore[attr-defined]
        scaler.step(optimizer)  # type: ignore[attr-defined]
        scaler.update()  # type: ignore[attr-defined]
        scheduler.step()  # type: ignore[attr-defined]
        ema.update_parameters(model)


def test_full_training_state_resumes_on_the_same_trajectory(tmp_path: Path) -> None:
    reference = _toy()
    _steps(reference, 10)

    first = _toy()
    _steps(first, 4)
    model, ema, optimizer, scheduler, scaler = first
    ckpt = _ckpt(tmp_path)
    ckpt.save(
        capture_training_state(
            step=4, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema
        ),
        step=4,
    )
    _steps(first, 3)  # the doomed run goes on a little, then dies
    ckpt.close()

    torch.manual_seed(12345)  # a new process: other seeds, fresh objects
    resumed = _toy()
    model, ema, optimizer, scheduler, scaler = resumed
    restored = _ckpt(tmp_path).load_latest()
    assert restored is not None
    progress = restore_training_state(
        restored.state,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
    )
    assert progress.step == 4 and scaler.get_scale() == reference[4].get_scale() / 2**3  # type: ignore[attr-defined]
    _steps(resumed, 6)
    for got, want in zip(
        resumed[1].state_dict().values(), reference[1].state_dict().values(), strict=True
    ):
        assert _same_bits(got, want)
    for got, want in zip(
        model.state_dict().values(), reference[0].state_dict().values(), strict=True
    ):
        assert _same_bits(got, want)
    assert (
        copy.deepcopy(optimizer.state_dict()["param_groups"])
        == reference[2].state_dict()["param_groups"]
    )
