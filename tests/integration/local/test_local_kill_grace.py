"""The kill grace `cancel` announces is the one `targets` and `profiles` show: one source, the
target's ``kill_grace_s``, else its profile's (issue 13, item 9). The spot grace is the platform's
preemption window, told to the job; cancel never uses it."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from local_helpers import Project


def _announced_grace_s(project: Project, name: str) -> float:
    """Cancel a real running local run; the grace its human output announces."""
    run_id, _go = project.start_waiting(name)
    project.wait_running(run_id)
    said = project.cli("cancel", run_id).stdout
    found = re.search(r"KILL follows after ([0-9.]+) s", said)
    assert found, said
    project.wait_ended(run_id)
    return float(found.group(1))


def _targets(project: Project) -> dict[str, dict[str, object]]:
    doc = json.loads(project.cli("targets", "--json").stdout)
    return {t["name"]: t for t in doc["targets"]}


def _profile(project: Project, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(project.cli("profiles", name, "--json").stdout)
    return doc


def test_cancel_announces_the_kill_grace_that_targets_and_the_local_profile_show(make_project):
    project = make_project()
    shown = _targets(project)["local"]["kill_grace_s"]
    assert shown == _profile(project, "local")["kill_grace_s"]
    assert _announced_grace_s(project, "default-grace") == shown


def test_a_profile_with_its_own_kill_grace_sets_what_cancel_waits_and_targets_shows(make_project):
    project = make_project(toml='[project]\nprofile_dirs = ["profiles"]\n')
    builtin = resources.files("outlive.profiles").joinpath("data", "local.toml").read_text()
    assert "kill_grace_s = 30.0" in builtin
    (project.dir / "profiles").mkdir()
    Path(project.dir / "profiles" / "local.toml").write_text(
        builtin.replace("kill_grace_s = 30.0", "kill_grace_s = 7.0")
    )
    assert _profile(project, "local")["kill_grace_s"] == 7.0
    assert _targets(project)["local"]["kill_grace_s"] == 7.0
    assert _announced_grace_s(project, "own-grace") == 7.0


def test_a_spot_target_shows_its_profiles_kill_grace_and_spot_grace_separately(make_project):
    toml = (
        '[targets.a100]\nprofile = "runpod"\nhost = "10.0.0.5"\nworkdir = "/workspace/w"\n'
        'spot = true\n[targets.ondemand]\nprofile = "runpod"\nhost = "10.0.0.6"\n'
        'workdir = "/workspace/w"\n[targets.own]\nprofile = "runpod"\nhost = "10.0.0.7"\n'
        'workdir = "/workspace/w"\nspot = true\nkill_grace_s = 12\n'
    )
    project = make_project(toml=toml)
    runpod = _profile(project, "runpod")
    targets = _targets(project)
    # spot = true: the job is told the preemption window; cancel still waits the kill grace.
    assert targets["a100"]["kill_grace_s"] == runpod["kill_grace_s"]
    assert targets["a100"]["spot_grace_s"] == runpod["spot_grace_s"]
    assert targets["ondemand"]["kill_grace_s"] == runpod["kill_grace_s"]
    assert targets["ondemand"]["spot_grace_s"] is None
    assert targets["own"]["kill_grace_s"] == 12 and targets["own"]["spot_grace_s"] == 5.0
    assert "12 s (spot 5 s)" in project.cli("targets").stdout
