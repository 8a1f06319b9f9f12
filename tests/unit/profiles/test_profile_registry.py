"""Finding profiles: built-ins, the user's own files, and the errors a bad file gives."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from outlive.errors import ConfigError
from outlive.profiles import list_profiles, load_profile, parse_profile


def _builtin_text(name: str) -> str:
    data = resources.files("outlive.profiles").joinpath("data").joinpath(f"{name}.toml")
    return data.read_text(encoding="utf-8")


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _variant(base: str, new_name: str, **replace: str) -> str:
    text = _builtin_text(base).replace(f'name = "{base}"', f'name = "{new_name}"', 1)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_a_user_directory_adds_a_profile(tmp_path: Path) -> None:
    _write(tmp_path, "lab-cluster", _variant("slurm", "lab-cluster"))
    profile = load_profile("lab-cluster", extra_dirs=[tmp_path])
    assert profile.kind == "slurm"
    assert [p.name for p in list_profiles([tmp_path])][-1] == "lab-cluster"


def test_a_user_file_named_like_a_builtin_replaces_it(tmp_path: Path) -> None:
    text = _builtin_text("slurm").replace("kill_grace_s = 30.0", "kill_grace_s = 90.0")
    _write(tmp_path, "slurm", text)
    assert load_profile("slurm", [tmp_path]).kill_grace_s == 90
    listed = {p.name: p for p in list_profiles([tmp_path])}
    assert listed["slurm"].kill_grace_s == 90
    assert len(listed) == 9
    assert load_profile("slurm").kill_grace_s == 30  # the built-in itself is untouched


def test_a_later_directory_wins_over_an_earlier_one(tmp_path: Path) -> None:
    slurm = _builtin_text("slurm")
    _write(tmp_path / "a", "slurm", slurm.replace("kill_grace_s = 30.0", "kill_grace_s = 60.0"))
    _write(tmp_path / "b", "slurm", slurm.replace("kill_grace_s = 30.0", "kill_grace_s = 90.0"))
    assert load_profile("slurm", [tmp_path / "a", tmp_path / "b"]).kill_grace_s == 90


def test_a_single_directory_may_be_passed_as_a_plain_string(tmp_path: Path) -> None:
    _write(tmp_path, "mine", _variant("generic-ssh", "mine"))
    assert load_profile("mine", str(tmp_path)).name == "mine"


def test_the_name_key_may_be_left_out_and_comes_from_the_file_name(tmp_path: Path) -> None:
    _write(tmp_path, "box2", _builtin_text("generic-ssh").replace('name = "generic-ssh"\n', ""))
    assert load_profile("box2", [tmp_path]).name == "box2"


def test_a_missing_directory_is_skipped(tmp_path: Path) -> None:
    assert load_profile("runpod", [tmp_path / "nope"]).name == "runpod"


def test_a_file_given_as_directory_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "x", "")
    with pytest.raises(ConfigError, match="is a file"):
        list_profiles([path])


def test_unknown_profile_names_the_known_ones_and_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile("lamda")
    message = str(caught.value)
    assert "'lamda'" in message and "runpod" in message and "lamda.toml" in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("name", ["../etc/passwd", "RunPod", "run pod", "", "a'; rm -rf ~"])
def test_invalid_profile_names_are_refused_before_touching_files(name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid profile name"):
        load_profile(name)


def test_bad_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken", 'name = "broken"\n[[storage]\n')
    with pytest.raises(ConfigError) as caught:
        load_profile("broken", [tmp_path])
    assert str(path) in str(caught.value) and "line 2" in str(caught.value)
    assert "fix" in str(caught.value)


def test_a_wrong_type_names_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    text = _variant("runpod", "pod2", **{"survives_stop = true": 'survives_stop = "yes"'})
    path = _write(tmp_path, "pod2", text)
    with pytest.raises(ConfigError) as caught:
        load_profile("pod2", [tmp_path])
    message = str(caught.value)
    assert str(path) in message
    assert "'storage[2].survives_stop'" in message  # counted as the reader counts tables
    assert "'yes'" in message and "fix: use true or false" in message


def test_an_unknown_key_is_named_with_the_allowed_ones(tmp_path: Path) -> None:
    text = _variant("runpod", "pod3", **{"[defaults]\n": '[defaults]\nhf_hom = "/x"\n'})
    _write(tmp_path, "pod3", text)
    with pytest.raises(ConfigError) as caught:
        load_profile("pod3", [tmp_path])
    message = str(caught.value)
    assert "'defaults.hf_hom'" in message and "hf_home" in message and "remove it" in message


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    text = _variant("slurm", "hpc", **{"kill_grace_s = 30.0\n": ""})
    _write(tmp_path, "hpc", text)
    with pytest.raises(ConfigError, match=r"'kill_grace_s' is missing; fix: add kill_grace_s"):
        load_profile("hpc", [tmp_path])


def test_an_inconsistent_profile_says_what_to_change(tmp_path: Path) -> None:
    text = _variant("runpod", "pod4", **{"spot_grace_s = 5.0": "# no grace"})
    _write(tmp_path, "pod4", text)
    with pytest.raises(ConfigError, match="spot_grace_s must be set exactly when"):
        load_profile("pod4", [tmp_path])


def test_a_name_that_disagrees_with_the_file_name_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "mine", _builtin_text("local"))
    with pytest.raises(ConfigError, match=r"key 'name' is 'local' but the file is mine\.toml"):
        load_profile("mine", [tmp_path])


def test_a_hostile_file_name_is_refused_when_listing(tmp_path: Path) -> None:
    _write(tmp_path, "it's $(mine)", _builtin_text("local"))
    with pytest.raises(ConfigError, match="invalid name"):
        list_profiles([tmp_path])
    assert load_profile("local", [tmp_path]).name == "local"  # other names still load


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    tmp_path.joinpath("latin.toml").write_bytes(b'title = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_profile("latin", [tmp_path])


def test_parse_profile_reports_the_origin_it_is_given() -> None:
    with pytest.raises(ConfigError, match=r"^profile file <stdin>: "):
        parse_profile('name = "x"\n', "<stdin>")
