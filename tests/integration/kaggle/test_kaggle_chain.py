"""Runs on Kaggle through the real ``kaggle`` client and a local fake of its API: a run longer
than the session budget becomes a chain of versions that ends bit-identical to a run that fit
in one version; a version that fails keeps its failure message."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from outlive import wire
from outlive.agent.bundle import zipapp
from outlive.backends import kaggle_render as kr
from outlive.backends.kaggle import ChainView, KaggleChain
from outlive.backends.kaggle_cli import KaggleCli
from outlive.demo import _same_weights
from outlive.notebook.colab import project_zip
from outlive.testing import providers

EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
COMMAND = ["python", "train_numpy.py", "--steps", "120", "--save-every", "5",
           "--step-sleep-s", "0.05"]  # fmt: skip
DEADLINE_S = 240.0


def _chain(tmp: Path, fake: dict[str, Any], slug: str, budget_s: float) -> KaggleChain:
    request = wire.LaunchRequest(
        run_id=f"r{slug.replace('-', '')}"[:20], name="toy", command=COMMAND, workdir="",
        profile="kaggle", kill_grace_s=10.0, created_at=time.time(),
    ).to_json()  # fmt: skip
    first = kr.Version(
        owner=fake["target"]["owner"], slug=slug, project="proj", name="toy", request=request,
        budget_s=budget_s, margin_s=0.0,
    )  # fmt: skip
    code = project_zip(EXAMPLE.parent, [EXAMPLE.name])
    return KaggleChain(first, tmp / "state", KaggleCli(), code=code, agent=zipapp())


def _until_ended(chain: KaggleChain) -> ChainView:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        view = chain.look()
        if view.state in ("succeeded", "failed", "cancelled"):
            return view
        time.sleep(0.3)
    raise AssertionError(f"the chain did not end in {DEADLINE_S:g} s: {chain.look()}")


def test_kaggle_chain_of_three_versions_ends_bit_identical(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    fake_url = kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"]
    providers.control(fake_url, "config", {"session_limit_s": 120, "grace_s": 5})
    reference = _chain(tmp_path / "ref", kaggle_fake, "toy-reference", budget_s=600.0)
    reference.launch()
    ref_view = _until_ended(reference)
    assert ref_view.state == "succeeded", ref_view
    assert len(ref_view.versions) == 1
    ref_tree = reference.pull(tmp_path / "ref-pull")

    chain = _chain(tmp_path / "chain", kaggle_fake, "toy-chained", budget_s=2.0)
    chain.launch()
    view = _until_ended(chain)
    assert view.state == "succeeded", view
    assert len(view.versions) >= 3  # 120 steps of 50 ms cannot fit in two 2 s budgets
    assert [v["outcome"] for v in view.versions[:-1]] == ["stopped"] * (len(view.versions) - 1)
    state = providers.control(fake_url, "state")
    chained = [v for v in state["versions"] if v["ref"].endswith("/toy-chained")]
    assert all(v["sources"] == ["toy-chained"] for v in chained[1:])  # resumed from the last
    assert chained[0]["enable_internet"] is False  # set explicitly (NB3)
    tree = chain.pull(tmp_path / "pull")
    same, detail = _same_weights(
        ref_tree / "checkpoints" / "toy" / "final.npz", tree / "checkpoints" / "toy" / "final.npz"
    )
    assert same, detail


def test_kaggle_version_asking_for_a_gpu_it_lacks_fails_fast_with_message(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    chain = _chain(tmp_path, kaggle_fake, "toy-gpu-none", budget_s=600.0)
    chain.first = kr.Version(**{**chain.first.__dict__, "accelerator": "gpu"})
    chain.launch()
    view = _until_ended(chain)
    assert view.state == "failed"
    assert view.diagnosis is not None and view.diagnosis["gotchas"] == ["NB3"]
    assert "asked for a GPU and sees none" in view.diagnosis["evidence"][0]
