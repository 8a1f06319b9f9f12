"""`pull` on a machine without the training framework: a real ``.pt`` written by real torch on
the (local) box is pulled by an ``outlive`` whose Python cannot import torch. A ``sitecustomize``
on PYTHONPATH puts a finder first on ``sys.meta_path`` that answers ``import torch`` exactly as
an interpreter without torch does (ModuleNotFoundError, name "torch"); the test first proves
that the shim holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_helpers import Project

from outlive.testing.no_torch import SAVE_PT, no_torch_env


@pytest.fixture
def pt_run(project: Project) -> tuple[Project, str]:
    """A finished local run whose checkpoint directory holds a real torch file."""
    project.write("save_pt.py", SAVE_PT)
    run_id = project.python("save_pt.py", name="pt")
    st = project.wait_ended(run_id, timeout_s=180)
    assert st["state"] == "succeeded", st
    return project, run_id


def without_torch(project: Project, tmp_path: Path) -> Project:
    """The same project driven by an outlive whose Python cannot import torch."""
    return Project(project.dir, env=no_torch_env(tmp_path / "no-torch", project.env))


def pt_entry(files: list[dict[str, object]]) -> dict[str, object]:
    (entry,) = [f for f in files if f["path"] == "ckpt/model.pt"]
    return entry


def test_a_torch_file_pulled_without_torch_is_hash_verified_and_marked_skipped(
    pt_run: tuple[Project, str], tmp_path: Path
) -> None:
    project, run_id = pt_run
    here = without_torch(project, tmp_path)
    done = here.cli("pull", "pt", "--json", timeout_s=180)
    result = json.loads(done.stdout)
    assert result["ok"] and result["run_id"] == run_id
    assert "run the same pull again" not in done.stderr
    entry = pt_entry(result["verify"]["results"])
    assert entry["ok"] and entry["sha256"] and entry["load"] == "torch"
    assert entry["load_check"] == "skipped" and entry["load_skipped"] == "torch not installed"
    assert result["verify"]["load_skipped"] == ["ckpt/model.pt"]

    dest = Path(result["dest"])
    record = json.loads((dest / "PULL_VERIFIED.json").read_text())
    assert record["load_skipped"] == ["ckpt/model.pt"]
    stored = pt_entry(record["files"])
    assert stored["load_check"] == "skipped" and stored["load_skipped"] == "torch not installed"
    assert stored["sha256"] == entry["sha256"]

    human = here.cli("pull", "pt", timeout_s=180)
    assert "load check skipped: torch not installed" in human.stdout
    assert "1 load check(s) skipped" in human.stdout

    # With torch back, `verify` loads it and the record says so.
    again = project.cli("verify", str(dest), "--require-load-check", "--json")
    assert pt_entry(json.loads(again.stdout)["results"])["load_check"] == "loaded"
    record = json.loads((dest / "PULL_VERIFIED.json").read_text())
    assert pt_entry(record["files"])["load_check"] == "loaded" and record["load_skipped"] == []


def test_require_load_check_fails_a_torch_file_without_torch_naming_the_fix(
    pt_run: tuple[Project, str], tmp_path: Path
) -> None:
    project, _ = pt_run
    here = without_torch(project, tmp_path)
    done = here.cli("pull", "pt", "--require-load-check", "--json", rc=1, timeout_s=180)
    result = json.loads(done.stdout)
    assert not result["ok"] and result["verified_file"] is None
    assert pt_entry(result["verify"]["results"])["load_check"] == "skipped"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "is run" in lines[0]  # which run `pull pt` picked
    (sentence,) = [line for line in lines if "did not" in line or "install" in line]
    assert "install torch here" in sentence and "--require-load-check" in sentence
    assert "run the same pull again" not in done.stderr
    dest = Path(result["dest"])
    assert not (dest / "PULL_VERIFIED.json").exists()

    failed = here.cli("verify", str(dest), "--require-load-check", rc=1)
    assert "install torch here" in failed.stderr
    assert "does not match its manifest" not in failed.stderr
    # Without the strict flag the same tree verifies by SHA-256.
    here.cli("verify", str(dest))
