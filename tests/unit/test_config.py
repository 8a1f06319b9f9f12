"""Project configuration: outlive.toml or [tool.outlive], the always-present ``local`` target, and
every mistake reported as one sentence naming the file, the table, the key and the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from outlive.config import LOCAL, find_project_dir, load_config
from outlive.errors import ConfigError

BOX = '[targets.box]\nhost = "10.0.0.5"\nworkdir = "/srv/run"\n'
RUNPOD = '[targets.pod]\nprofile = "runpod"\nhost = "10.0.0.6"\n'  # workdir from the profile


def _project(tmp_path: Path, toml: str | None = None, pyproject: str | None = None) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    if toml is not None:
        (d / "outlive.toml").write_text(toml)
    if pyproject is not None:
        (d / "pyproject.toml").write_text(pyproject)
    return d


def _error(project: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(project)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    assert info.value.exit_code == 2
    return message


def test_no_config_file_means_only_the_local_target(tmp_path):
    d = tmp_path / "bare"
    (d / ".git").mkdir(parents=True)  # a project root without any outlive config
    cfg = load_config(d)
    assert cfg.source is None and cfg.project_dir == d
    assert list(cfg.targets) == [LOCAL]
    local = cfg.target(LOCAL)
    assert local.is_local and local.profile == "local"
    assert local.placement.workdir == str(d)
    assert local.placement.durable == str(d / ".outlive" / "durable")
    assert cfg.state_dir == d / ".outlive"


def test_pyproject_without_tool_outlive_is_no_config(tmp_path):
    d = _project(tmp_path, pyproject='[project]\nname = "x"\n')
    cfg = load_config(d)
    assert cfg.source is None and list(cfg.targets) == [LOCAL]


def test_tool_outlive_in_pyproject_is_read(tmp_path):
    d = _project(
        tmp_path,
        pyproject='[project]\nname = "x"\n\n[tool.outlive.project]\nname = "sweep"\n\n'
        '[tool.outlive.targets.box]\nhost = "10.0.0.5"\nworkdir = "/srv/run"\n',
    )
    cfg = load_config(d)
    assert cfg.source == d / "pyproject.toml"
    assert cfg.project_name == "sweep"
    assert set(cfg.targets) == {LOCAL, "box"}
    assert cfg.target("box").connection.host == "10.0.0.5"


def test_outlive_toml_wins_over_pyproject(tmp_path):
    d = _project(
        tmp_path,
        toml=BOX,
        pyproject='[tool.outlive.targets.other]\nhost = "h"\nworkdir = "/w"\n',
    )
    cfg = load_config(d)
    assert cfg.source == d / "outlive.toml" and set(cfg.targets) == {LOCAL, "box"}


def test_a_remote_target_keeps_its_values(tmp_path):
    d = _project(
        tmp_path,
        toml=BOX + 'port = 2222\nuser = "root"\nkill_grace_s = 5\nenv = { A = "1" }\n',
    )
    box = load_config(d).target("box")
    conn = box.connection
    assert (conn.host, conn.port, conn.user) == ("10.0.0.5", 2222, "root")
    assert box.placement.workdir == "/srv/run" and conn.transport == "ssh"
    assert box.policy.kill_grace_s == 5 and box.policy.env == {"A": "1"} and not box.is_local


def test_local_target_takes_grace_env_and_durable_from_its_table(tmp_path):
    d = _project(
        tmp_path,
        toml='[targets.local]\nkill_grace_s = 1\ndurable = "ck"\nenv = { OMP_NUM_THREADS = "3" }\n',
    )
    local = load_config(d).target(LOCAL)
    assert local.policy.kill_grace_s == 1 and local.policy.env == {"OMP_NUM_THREADS": "3"}
    assert local.placement.durable == str((d / "ck").resolve())
    assert local.placement.workdir == str(d)


def test_the_project_root_is_found_from_a_subdirectory(tmp_path):
    d = _project(tmp_path, toml="")
    sub = d / "src" / "deep"
    sub.mkdir(parents=True)
    assert find_project_dir(sub) == d
    assert load_config(sub).project_dir == d


def test_a_misspelt_key_names_the_file_table_key_and_suggests_the_right_one(tmp_path):
    d = _project(tmp_path, toml='[targets.box]\nhots = "10.0.0.5"\nworkdir = "/w"\n')
    msg = _error(d)
    assert str(d / "outlive.toml") in msg
    assert "[targets.box]" in msg and "'hots'" in msg and "did you mean 'host'?" in msg


def test_an_unknown_key_in_project_lists_the_valid_keys(tmp_path):
    d = _project(tmp_path, toml='[project]\nzzz = "x"\n')
    msg = _error(d)
    assert "[project]" in msg and "'zzz'" in msg and "name" in msg and "exclude" in msg


@pytest.mark.parametrize(
    "name",
    ["a/b", "..", ".", "", "../../etc", "tab\there", "csi\x9b1m", "p$HOME"],
    ids=["slash", "dotdot", "dot", "empty", "climbs", "control", "c1", "dollar"],
)
def test_a_project_name_that_is_not_one_directory_name_is_refused(tmp_path, name):
    """The project name becomes a directory on the box (a profile's ``/workspace/{project}``):
    ``../../etc`` would put the workdir outside it."""
    d = _project(tmp_path, f"[project]\nname = {json.dumps(name)}\n" + RUNPOD)
    message = _error(d)
    assert "[project] key 'name'" in message and "project name" in message
    assert repr(name) in message or "1-200 bytes" in message


def test_a_directory_name_a_box_would_expand_needs_a_project_name(tmp_path):
    """No [project] name: the directory's name names the project's directories on its boxes,
    whose agent expands $VARS in paths (``/workspace/p$HOME`` would be ``/workspace/p/root``).
    One sentence saying what to set; with only the local target (literal paths) it loads."""
    d = tmp_path / "p$HOME"
    d.mkdir()
    (d / "outlive.toml").write_text(RUNPOD)
    message = _error(d)
    assert "'p$HOME'" in message and "cannot hold '$' before" in message
    assert "[project] name" in message
    (d / "outlive.toml").write_text('[project]\nname = "p-home"\n' + RUNPOD)
    assert load_config(d).project_name == "p-home"
    (d / "outlive.toml").write_text("")
    assert load_config(d).project_name == "p$HOME"


def test_a_value_of_the_wrong_type_names_the_key(tmp_path):
    d = _project(tmp_path, toml='[targets.box]\nhost = "h"\nport = "x"\nworkdir = "/w"\n')
    msg = _error(d)
    assert str(d / "outlive.toml") in msg and "[targets.box]" in msg and "'port'" in msg


def test_an_out_of_range_port_is_refused(tmp_path):
    d = _project(tmp_path, toml='[targets.box]\nhost = "h"\nport = 70000\nworkdir = "/w"\n')
    assert "'port'" in _error(d)


def test_invalid_toml_names_the_file(tmp_path):
    d = _project(tmp_path, toml="[targets.box\nhost = \n")
    msg = _error(d)
    assert str(d / "outlive.toml") in msg and "not valid TOML" in msg


def test_invalid_toml_in_pyproject_names_it(tmp_path):
    d = _project(tmp_path, pyproject="[tool.outlive\n")
    assert str(d / "pyproject.toml") in _error(d)


def test_an_unknown_target_names_it_the_configured_ones_and_a_close_match(tmp_path):
    cfg = load_config(_project(tmp_path, toml=BOX))
    with pytest.raises(ConfigError) as info:
        cfg.target("nope")
    msg = str(info.value)
    assert "'nope'" in msg and "box" in msg and "local" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="did you mean 'box'"):
        cfg.target("bx")


def test_declared_outputs_reach_the_target_options(tmp_path: Path) -> None:
    from outlive.config import load_config
    from outlive.lifecycle.pull import declared_outputs

    (tmp_path / "outlive.toml").write_text(
        '[targets.box]\nhost = "h"\nworkdir = "/w"\noutputs = ["results", "logs/eval"]\n'
    )
    target = load_config(tmp_path).target("box")
    assert target.placement.outputs == ("results", "logs/eval")
    assert declared_outputs(target) == ["results", "logs/eval"]


def test_a_deleted_working_directory_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = tmp_path / "gone"
    gone.mkdir()
    outlive = str(Path(sys.executable).with_name("outlive"))
    # the shell removes its own cwd, then runs outlive in it (as after `rm -rf` of the project)
    for args in (["status"], ["status", "--json"], ["ls"]):
        done = subprocess.run(
            ["sh", "-c", 'rmdir "$PWD" && exec "$@"', "sh", outlive, *args],
            cwd=gone,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OUTLIVE_NO_DAEMON": ""},
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("outlive: the current directory no longer exists")
        assert "Traceback" not in done.stderr
        gone.mkdir()


@pytest.mark.parametrize("bad", ["a'; rm -rf ~", "pod id", "../pods", "", "p" * 129])
def test_a_cloud_id_that_is_not_a_plain_provider_id_is_one_sentence(tmp_path, bad):
    toml_string = json.dumps(bad)  # a TOML basic string
    (tmp_path / "outlive.toml").write_text(
        f'[targets.a100]\nprofile = "runpod"\nhost = "h"\ncloud_id = {toml_string}\n'
    )
    with pytest.raises(ConfigError, match="cloud_id") as err:
        load_config(tmp_path)
    assert "\n" not in str(err.value)


def test_a_cloud_id_reaches_the_target_and_survives_the_cache(tmp_path):
    (tmp_path / "outlive.toml").write_text(
        '[targets.a100]\nprofile = "runpod"\nhost = "h"\ncloud_id = "xedezhzb9la3ye"\n'
    )
    assert load_config(tmp_path).target("a100").cloud_id == "xedezhzb9la3ye"
    assert load_config(tmp_path).target("a100").cloud_id == "xedezhzb9la3ye"  # from the cache


def test_an_edited_project_profile_is_not_served_from_the_cache(tmp_path):
    """A profile in the project's own profile_dirs is one of the config's sources: editing it
    re-validates (the cache was keyed only by the built-in and user profile directories)."""
    builtin = (Path(__file__).parents[2] / "src/outlive/profiles/data/generic-ssh.toml").read_text()
    mine = builtin.replace('name = "generic-ssh"', 'name = "mine"')
    (tmp_path / "profiles").mkdir()
    profile = tmp_path / "profiles" / "mine.toml"
    profile.write_text(mine.replace("kill_grace_s = 30.0", "kill_grace_s = 5.0"))
    (tmp_path / "outlive.toml").write_text(
        '[project]\nprofile_dirs = ["profiles"]\n[targets.box]\nprofile = "mine"\nhost = "h"\n'
    )
    assert load_config(tmp_path).target("box").policy.kill_grace_s == 5.0
    assert load_config(tmp_path).target("box").policy.kill_grace_s == 5.0  # cached
    profile.write_text(mine.replace("kill_grace_s = 30.0", "kill_grace_s = 45.0"))
    assert load_config(tmp_path).target("box").policy.kill_grace_s == 45.0


def test_another_home_is_not_served_the_cache_of_the_first(tmp_path, monkeypatch):
    """``~`` in the config expands with HOME: the same project read with another HOME (sudo -E,
    a CI runner, a shared checkout) gets its own paths."""
    (tmp_path / "outlive.toml").write_text('[targets.local]\ndurable = "~/ckpt"\n')
    for home in ("h1", "h2", "h1"):
        monkeypatch.setenv("HOME", str(tmp_path / home))
        durable = load_config(tmp_path).target(LOCAL).placement.durable
        assert durable == str(tmp_path / home / "ckpt")


def test_a_project_id_is_made_once_by_a_launch_and_kept(tmp_path):
    from outlive.config import project_id

    state = tmp_path / ".outlive"
    assert project_id(state) is None  # a look makes none
    assert not state.exists()
    made = project_id(state, create=True)
    assert made is not None and len(made) == 32
    assert project_id(state) == made == project_id(state, create=True)
    (state / "project-id").write_text("")  # cut short by a crash
    again = project_id(state, create=True)
    assert again is not None and again != made and project_id(state) == again
    assert sorted(p.name for p in state.iterdir()) == [".gitignore", "project-id"]
