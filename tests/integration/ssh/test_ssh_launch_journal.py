"""Issue 12 over a real SSH link: a link cut while a launch is in flight never leaves a run on
the box that the registry does not know (the launch was journaled before it was sent; the next
look finds the run and records it)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from test_ssh_runs import OUTLIVE, cli, project, train_cmd  # noqa: F401 (project: a fixture)

from outlive.session import Session
from outlive.testing import Box


def _runs_dir(proj: Path) -> Path:
    workdir = Session.open(proj).target("box").placement.workdir
    return Path(workdir) / ".outlive" / "runs"


def test_a_link_cut_during_launch_leaves_no_run_the_registry_does_not_know(
    project: Path,  # noqa: F811
    box: Box,
) -> None:
    runs_dir = _runs_dir(project)
    proc = subprocess.Popen(
        [OUTLIVE, "run", "-t", "box", "--json", "--name", "cut", "--", *train_cmd(400, 0.05)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if runs_dir.is_dir() and any(runs_dir.iterdir()):
            break  # the agent is creating the run: cut the link under the launch
        time.sleep(0.005)
    box.cut()
    _out, err = proc.communicate(timeout=120)
    box.restore()
    on_box = sorted(d.name for d in runs_dir.iterdir()) if runs_dir.is_dir() else []
    assert on_box, f"the launch never reached the box: {err}"
    if proc.returncode != 0:  # the reply was lost: one sentence, no traceback
        assert "Traceback" not in err, err
    done = cli(project, "status", "--json", check=False)
    assert done.returncode == 0, done.stderr
    rows = {r["run_id"]: r for r in json.loads(done.stdout)["runs"]}
    assert set(on_box) <= set(rows), (on_box, rows)
    for run_id in on_box:
        assert rows[run_id]["state"] in ("pending", "running", "succeeded"), rows[run_id]
        assert rows[run_id]["run_dir"].endswith(run_id)
        cli(project, "cancel", run_id, check=False)


def _launch(proj: Path, name: str) -> str:
    out = cli(proj, "run", "-t", "box", "--json", "--name", name, "--", "sleep", "600")
    return str(json.loads(out.stdout)["run_id"])


def _copy_of(proj: Path, where: Path, names: tuple[str, ...] = ("outlive.toml",)) -> Path:
    """Another checkout of ``proj`` (its ``names`` and the training script, no .outlive/)."""
    other = where / proj.name
    other.mkdir(parents=True)
    for name in (*names, "train_numpy.py"):
        shutil.copyfile(proj / name, other / name)
    return other


def _looked(proj: Path) -> set[str]:
    done = cli(proj, "status", "--json", check=False)
    assert done.returncode == 0, done.stderr
    return {r["run_id"] for r in json.loads(done.stdout)["runs"]}


def test_a_look_never_adopts_the_runs_of_another_project_sharing_the_workdir(
    project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two projects named alike (two checkouts, on a laptop and a workstation) whose target
    shares one workdir on the box: each look adopts only its own project's lost runs (the other's
    were adopted, shown as its own, and could be cancelled from it)."""
    other = _copy_of(project, tmp_path / "elsewhere")
    mine = _launch(project, "mine")
    theirs = _launch(other, "theirs")
    try:
        assert _looked(other) == {theirs}
        assert _looked(project) == {mine}
        refused = cli(other, "cancel", mine, check=False)
        assert refused.returncode == 2 and "no run" in refused.stderr
        # its own run whose row was lost is still adopted
        with sqlite3.connect(project / ".outlive" / "registry.db") as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (mine,))
        known = _launch(project, "known")  # the target has a known run: a look asks the box
        assert _looked(project) == {mine, known}
    finally:
        for proj, run in ((project, mine), (other, theirs), (project, "known")):
            cli(proj, "cancel", run, check=False)


def test_a_look_says_how_many_runs_another_copy_launched_there(
    project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A laptop lost and the project cloned afresh elsewhere (a new .outlive/, so another
    project id): the clone's look never adopts the runs the first copy launched, but says how
    many there are and which id they carry; given that id, the clone follows them."""
    clone = _copy_of(project, tmp_path / "clone")
    mine = _launch(project, "mine")
    own = _launch(clone, "own")
    try:
        doc = json.loads(cli(clone, "status", "--json").stdout)
        assert {r["run_id"] for r in doc["runs"]} == {own}
        (seen,) = doc["elsewhere"]
        first_id = (project / ".outlive" / "project-id").read_text().strip()
        clone_id = (clone / ".outlive" / "project-id").read_text().strip()
        assert (seen["project_id"], seen["ours"], seen["target"]) == (first_id, clone_id, "box")
        assert seen["runs"] >= 1 and first_id[:8] in seen["note"]
        table = cli(clone, "status", check=False)
        assert "another copy of this project" in table.stdout
        shutil.copyfile(project / ".outlive" / "project-id", clone / ".outlive" / "project-id")
        assert mine in _looked(clone)
    finally:
        cli(project, "cancel", mine, check=False)
        cli(clone, "cancel", own, check=False)


def test_a_fresh_clone_discovers_its_runs_with_status_discover(
    project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A fresh clone (no .outlive/ at all) knows no run, so a plain look asks no box; it says
    so and names `status --discover`, which looks at every target: the first copy's runs are
    counted with their project id (never adopted), a target that cannot be reached is named,
    and once the clone holds that id, the same look records them as its own."""
    clone = _copy_of(project, tmp_path / "clone", names=())
    refused = tmp_path / "refused_ssh_config"
    refused.write_text("Host gone\n    HostName 127.0.0.1\n    Port 1\n    BatchMode yes\n")
    config = (project / "outlive.toml").read_text()
    gone = f'\n[targets.gone]\nhost = "gone"\nssh_config = "{refused}"\nworkdir = "/tmp/gone"\n'
    (clone / "outlive.toml").write_text(config + gone)
    mine = _launch(project, "mine")
    try:
        plain = cli(clone, "status")
        assert "outlive status --discover" in plain.stdout
        doc = json.loads(cli(clone, "status", "--json", "--discover", check=False).stdout)
        assert doc["runs"] == []
        (seen,) = doc["elsewhere"]
        first_id = (project / ".outlive" / "project-id").read_text().strip()
        assert (seen["project_id"], seen["ours"], seen["target"]) == (first_id, None, "box")
        assert "--discover" in seen["note"]
        assert [u["target"] for u in doc["unseen"]] == ["gone"] and doc["unseen"][0]["error"]
        (clone / ".outlive").mkdir(exist_ok=True)
        shutil.copyfile(project / ".outlive" / "project-id", clone / ".outlive" / "project-id")
        found = json.loads(cli(clone, "status", "--json", "--discover", check=False).stdout)
        assert mine in {r["run_id"] for r in found["runs"]}
        assert mine in _looked(clone)  # recorded: a plain look follows it from now on
    finally:
        cli(project, "cancel", mine, check=False)
