"""`pull` of a run still going is a snapshot, said plainly and recorded; after the run ends a new
pull is its result. `pull NAME` picks the newest run of that name and says which. Real local
runs: a job that writes into its checkpoint directory and stays running until a "go" file
exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local_helpers import Project

WRITER = """\
import os, sys, time
from pathlib import Path

ckpt = Path(os.environ["OUTLIVE_CKPT_DIR"])
ckpt.mkdir(parents=True, exist_ok=True)
(ckpt / "early.txt").write_text("written while running\\n")
(ckpt / "started").write_text("")
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
(ckpt / "final.txt").write_text("written at the end\\n")
"""


def start_writer(project: Project, name: str) -> tuple[str, Path]:
    if not (project.dir / "writer.py").exists():
        project.write("writer.py", WRITER)
    go = project.dir / f"go-{name}-{len(list(project.dir.glob('go-*')))}"
    run_id = project.python("writer.py", str(go), name=name)
    return run_id, go


def pull_json(project: Project, *args: str) -> tuple[dict[str, Any], str]:
    done = project.cli("pull", *args, "--json", timeout_s=120)
    return json.loads(done.stdout), done.stderr


def test_pull_of_a_running_run_is_a_marked_snapshot_and_a_pull_after_it_ends_is_not(
    project: Project,
) -> None:
    run_id, go = start_writer(project, "snap")
    st = project.wait(run_id, lambda s: s["state"] == "running", "the writer running")
    ckpt = Path(str(st["ckpt_dir"]))
    project.wait(run_id, lambda s: (ckpt / "started").exists(), "the writer's first file")

    result, _ = pull_json(project, "snap")
    assert result["ok"] and result["snapshot"] is True and result["state"] == "running"
    dest = Path(str(result["dest"]))
    assert (dest / "ckpt" / "early.txt").is_file()
    record = json.loads((dest / "PULL_VERIFIED.json").read_text())
    assert record["snapshot"] is True and record["run_state"] == "running"
    assert any("snapshot of a run still going" in w for w in result["warnings"])

    human = project.cli("pull", "snap", timeout_s=120)
    assert "SNAPSHOT" in human.stdout and "still running" in human.stdout
    assert "not its final result" in human.stdout
    # `verify` keeps the mark: re-verifying a snapshot does not make it final.
    project.cli("verify", str(dest))
    assert json.loads((dest / "PULL_VERIFIED.json").read_text())["snapshot"] is True

    go.write_text("")
    assert project.wait_ended(run_id)["state"] == "succeeded"
    final, _ = pull_json(project, "snap")
    assert final["ok"] and final["snapshot"] is False and final["state"] == "succeeded"
    assert Path(str(final["dest"])) == dest and (dest / "ckpt" / "final.txt").is_file()
    record = json.loads((dest / "PULL_VERIFIED.json").read_text())
    assert record["snapshot"] is False and record["run_state"] == "succeeded"
    human = project.cli("pull", "snap", timeout_s=120)
    assert "SNAPSHOT" not in human.stdout and "verified against manifest" in human.stdout


def test_pull_name_picks_the_newest_run_of_that_name_and_says_which(project: Project) -> None:
    first, go = start_writer(project, "twice")
    go.write_text("")
    assert project.wait_ended(first)["state"] == "succeeded"
    second, go = start_writer(project, "twice")
    go.write_text("")
    assert project.wait_ended(second)["state"] == "succeeded"

    result, err = pull_json(project, "twice")
    assert result["run_id"] == second and result["ok"]
    assert result["picked"] == (
        f"'twice' is run {second} on target 'local', the newest of 2 runs of that name"
    )
    assert f"is run {second}" in err
    human = project.cli("pull", "twice", "-t", "local", timeout_s=120)
    assert f"pulling 'twice' is run {second} on target 'local'" in human.stderr
    # By id it pulls exactly that run and needs no saying.
    by_id, _ = pull_json(project, first)
    assert by_id["run_id"] == first and by_id["picked"] is None
    # A target that does not have it: one sentence, exit 2.
    done = project.cli("pull", "twice", "-t", "elsewhere", rc=2)
    assert "no run named 'twice' on target 'elsewhere'" in done.stderr
    done = project.cli("pull", first, "-t", "elsewhere", rc=2)
    assert f"run {first} is on target 'local', not 'elsewhere'" in done.stderr
