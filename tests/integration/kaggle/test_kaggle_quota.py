"""The weekly GPU quota, read with the real ``kaggle`` client (``kaggle quota``) from the Kaggle
fake before each GPU push: `run -t kaggle` warns, in its JSON and on stderr, when less quota is
left than one version's budget, and stays quiet when enough is left or the target has no GPU."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kaggle_project import EXAMPLE, KaggleProject

from outlive.testing import providers

HOUR_S = 3600.0
WARNING = re.compile(
    r"the weekly GPU quota has 4\.0 h left of 4 h, less than one version's (\d+\.\d) h; "
    r"the version may stop early"
)


def _run(project: KaggleProject, name: str, *flags: str) -> Any:
    return project.cli("run", "-t", "kg", *flags, "--name", name, "--", "python", EXAMPLE.name,
                       "--steps", "5")  # fmt: skip


def test_run_warns_before_a_gpu_push_when_the_weekly_quota_is_short(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    fake_url = kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"]
    providers.control(fake_url, "config", {"gpu_quota_s": 4 * HOUR_S})
    gpu = KaggleProject(tmp_path / "gpu", kaggle_fake, accelerator="gpu",
                        session_budget_s=6 * HOUR_S)  # fmt: skip
    doc = json.loads(_run(gpu, "short", "--json").stdout)
    (said,) = doc["warnings"]
    m = WARNING.fullmatch(said)
    assert m is not None and m.group(1) == "6.0", said
    text = _run(gpu, "short-again")
    assert f"warning: {said}" in " ".join(text.stderr.split()), text.stderr
    pushed = providers.control(fake_url, "state")["versions"]
    assert [v["enable_gpu"] for v in pushed] == [True, True]  # a warning, not a refusal

    cpu = KaggleProject(tmp_path / "cpu", kaggle_fake, accelerator="none")
    assert json.loads(_run(cpu, "cpu", "--json").stdout)["warnings"] == []


def test_run_is_quiet_when_the_weekly_quota_covers_a_version(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    gpu = KaggleProject(tmp_path, kaggle_fake, accelerator="gpu", session_budget_s=6 * HOUR_S)
    doc = json.loads(_run(gpu, "plenty", "--json").stdout)  # 30 h a week, none used
    assert doc["warnings"] == []
    assert len(providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "state")[
        "versions"]) == 1  # fmt: skip
