"""The profile schema: frozen, strict, and consistent across its parts."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from outlive.profiles import Profile, list_profiles, load_profile
from outlive.profiles.registry import BUILTIN_ORDER, builtin_names
from outlive.profiles.render import to_json

EXPECTED = [
    "local",
    "generic-ssh",
    "runpod",
    "paperspace-core",
    "paperspace-notebook",
    "slurm",
    "kubernetes",
    "colab",
    "kaggle",
]


def _data(name: str = "runpod") -> dict[str, Any]:
    """A built-in profile as the plain data a TOML file would give."""
    return to_json(load_profile(name))


def test_every_seed_platform_has_a_built_in_profile_in_listing_order() -> None:
    assert builtin_names() == EXPECTED == list(BUILTIN_ORDER)
    assert [profile.name for profile in list_profiles()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_builtin_durable_dir_lies_on_a_tier_that_survives_a_stop(name: str) -> None:
    profile = load_profile(name)
    assert profile.durable.survives_stop is True


@pytest.mark.parametrize("name", EXPECTED)
def test_builtin_durable_tier_survives_destroy_unless_a_pull_must_come_first(name: str) -> None:
    profile = load_profile(name)
    # On a bare box and a Paperspace machine the durable disk dies with the box: the Iron Law
    # (pull and verify before destroying) is the only protection there.
    expected = {"generic-ssh": False, "paperspace-core": False}.get(name, True)
    survives = profile.durable.survives_destroy
    assert survives == expected or (survives == "n/a" and profile.destroy_event is None)


@pytest.mark.parametrize("name", EXPECTED)
def test_builtin_figures_cite_their_own_seed_or_say_they_are_assumptions(name: str) -> None:
    profile = load_profile(name)
    seed = profile.source.split()[1] if profile.source.startswith("seed ") else None
    sources = [profile.source, profile.kill_grace_source, profile.defaults.source]
    sources += [tier.source for tier in profile.storage]
    sources += [action.source for action in profile.teardown]
    sources += [clock.source for clock in profile.clocks]
    if profile.mtbf_s is not None:
        sources.append(profile.mtbf_source)
    for source in sources:
        if source.startswith("seed "):
            assert source.split()[1] == seed, source
        else:
            assert source.startswith(("assumption: ", "design: ")), source


@pytest.mark.parametrize("name", EXPECTED)
def test_builtin_defaults_hold_the_project_placeholder_or_are_project_relative(name: str) -> None:
    defaults = load_profile(name).defaults
    assert "{project}" in defaults.workdir or defaults.workdir == "."
    resolved = defaults.resolve("cifar")
    assert "{project}" not in resolved.workdir + resolved.durable_dir


def test_resolve_inserts_a_hostile_project_name_verbatim() -> None:
    hostile = 'a\'; echo $(id) "b" ü\nc'
    resolved = load_profile("runpod").defaults.resolve(hostile)
    assert resolved.workdir == f"/workspace/{hostile}"
    assert resolved.hf_home == "/workspace/hf"


def test_profiles_are_frozen() -> None:
    profile = load_profile("runpod")
    with pytest.raises(ValidationError):
        profile.kill_grace_s = 60.0
    with pytest.raises(ValidationError):
        profile.storage[0].survives_stop = True


def test_clocks_first_puts_the_up_front_clocks_before_the_others() -> None:
    kinds = [clock.surface_first for clock in load_profile("runpod").clocks_first()]
    assert kinds == sorted(kinds, reverse=True) and kinds[0] is True


def test_round_trip_through_json_gives_an_equal_profile() -> None:
    for profile in list_profiles():
        assert Profile.model_validate(to_json(profile)) == profile


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spot_available",), "yes"),  # no lax "yes" -> True
        (("kill_grace_s",), "30"),  # no string -> number
        (("kill_grace_s",), -1.0),
        (("storage", 0, "survives_stop"), "maybe"),
        (("storage", 0, "shared"), 1),
        (("clocks", 0, "duration_s"), "5"),
        (("clocks", 0, "kind"), "timer"),
        (("gotchas",), ["RP99"]),
        (("gotchas",), ["RP1", "RP1"]),
        (("clocks", 0, "gotchas"), ["rp1"]),
        (("storage", 0, "source"), "the docs"),
        (("name",), "Run Pod"),
        (("kind",), "cloud"),
    ],
)
def test_invalid_values_are_rejected(path: tuple[Any, ...], value: Any) -> None:
    data = _data()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        Profile.model_validate(data)


def test_unknown_keys_are_rejected_at_every_level() -> None:
    for where in (None, "defaults", "storage", "teardown", "clocks"):
        data = _data()
        target = data if where is None else data[where]
        (target[0] if isinstance(target, list) else target)["colour"] = "red"
        with pytest.raises(ValidationError, match="colour"):
            Profile.model_validate(data)


def test_spot_grace_is_set_exactly_when_spot_is_available() -> None:
    data = _data()
    data["spot_grace_s"] = None
    with pytest.raises(ValidationError, match="spot_grace_s"):
        Profile.model_validate(data)
    data = _data("generic-ssh")
    data["spot_grace_s"] = 120.0
    with pytest.raises(ValidationError, match="spot_grace_s"):
        Profile.model_validate(data)


def test_durable_tier_must_name_a_storage_tier() -> None:
    data = _data()
    data["defaults"]["durable_tier"] = "somewhere"
    with pytest.raises(ValidationError, match="durable_tier"):
        Profile.model_validate(data)


def test_survives_destroy_is_na_exactly_when_there_is_no_destroy_event() -> None:
    data = _data()
    data["storage"][0]["survives_destroy"] = "n/a"
    with pytest.raises(ValidationError, match="n/a"):
        Profile.model_validate(data)
    data = _data("slurm")
    data["storage"][0]["survives_destroy"] = True
    with pytest.raises(ValidationError, match="n/a"):
        Profile.model_validate(data)


def test_a_clock_range_runs_from_shortest_to_longest() -> None:
    data = _data("paperspace-core")
    data["clocks"][0]["range_s"] = [604800.0, 3600.0]
    with pytest.raises(ValidationError, match="range_s"):
        Profile.model_validate(data)


def test_an_mtbf_needs_a_source() -> None:
    data = _data()
    data["mtbf_source"] = ""
    with pytest.raises(ValidationError, match="where the figure comes from"):
        Profile.model_validate(data)


def test_storage_tier_names_are_unique() -> None:
    data = _data()
    data["storage"][1]["name"] = data["storage"][0]["name"]
    with pytest.raises(ValidationError, match="unique"):
        Profile.model_validate(data)


def test_loading_profiles_does_not_import_rich() -> None:
    code = (
        "import sys\n"
        "from outlive.profiles import list_profiles\n"
        "list_profiles()\n"
        "print('rich' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
