"""What `outlive profiles` shows: danger clocks first, then survival, then teardown; and JSON."""

from __future__ import annotations

import json

import pytest
from rich.console import Console, RenderableType
from rich.table import Table

from outlive.profiles import Profile, list_profiles, load_profile
from outlive.profiles.render import (
    format_duration,
    overview_json,
    render_overview,
    render_profile,
    to_json,
)


def _text(*renderables: RenderableType) -> str:
    console = Console(width=240, record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def test_profile_view_shows_danger_clocks_before_survival_and_teardown() -> None:
    parts = render_profile(load_profile("runpod"))
    titles = [str(part.title) for part in parts if isinstance(part, Table)]
    assert titles[:3] == [
        "⚠ Danger clocks — runpod",
        "Survival matrix — runpod",
        "Teardown — runpod",
    ]
    text = _text(*parts)
    assert text.index("stopped pod still bills") < text.index("Survival matrix")
    assert text.index("Survival matrix") < text.index("runpodctl remove pod <pod-id>")


def test_up_front_clocks_are_styled_as_danger() -> None:
    table = render_profile(load_profile("paperspace-notebook"))[1]
    assert isinstance(table, Table)
    assert table.title_style == "bold red"
    assert table.rows[0].style == "bold red"


def test_survival_matrix_uses_the_profile_own_event_names() -> None:
    text = _text(*render_profile(load_profile("runpod")))
    assert "survives stop?" in text and "survives terminate?" in text
    assert "$0.20/GB/mo (2× the running rate)" in text
    assert "network volume (durable)" in text


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda profile: profile.name)
def test_every_profile_renders_with_its_clocks_and_tiers(profile: Profile) -> None:
    text = _text(*render_profile(profile))
    for clock in profile.clocks:
        assert clock.name in text
    for tier in profile.storage:
        assert tier.name in text


def test_local_view_says_there_are_no_clocks_and_no_teardown() -> None:
    text = _text(*render_profile(load_profile("local")))
    assert "Danger clocks: none on local." in text
    assert "Teardown: none" in text


def test_overview_lists_every_profile_with_its_up_front_clocks() -> None:
    text = _text(render_overview(list_profiles()))
    for name in ("local", "runpod", "paperspace-notebook", "slurm", "kubernetes", "kaggle"):
        assert name in text
    assert "free notebook auto-shutdown (6 h)" in text
    assert "KillWait (30 s)" in text


def test_json_is_plain_and_complete() -> None:
    document = to_json(load_profile("runpod"))
    assert json.loads(json.dumps(document)) == document
    assert document["spot_grace_s"] == 5.0
    assert document["storage"][1]["stopped_billing_multiplier"] == 2.0
    assert document["defaults"]["durable_tier"] == "network volume"
    overview = overview_json(list_profiles())
    assert [item["name"] for item in overview["profiles"]][:2] == ["local", "generic-ssh"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "varies"),
        (5.0, "5 s"),
        (100.0, "100 s"),
        (5400.0, "90 min"),
        (21600.0, "6 h"),
        (108000.0, "30 h"),
        (604800.0, "7 d"),
        (2592000.0, "30 d"),
    ],
)
def test_durations_read_as_the_seeds_write_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_gradient_notebook_shows_its_timers_and_storage_billing_before_the_matrix() -> None:
    text = _text(*render_profile(load_profile("paperspace-notebook")))
    for clock in ("free notebook auto-shutdown", "paid notebook auto-shutdown"):
        assert text.index(clock) < text.index("Survival matrix")
    assert text.index("/storage bills until deleted") < text.index("Survival matrix")
    assert "Guide: docs/guides/gradient.md" in text


def test_a_user_profiles_text_is_shown_as_written_never_as_markup(tmp_path) -> None:
    """Text in a user's profile file reaches the table as it is: "[after 12 h]" was taken for a
    style and dropped, and a "[/x]" stopped `outlive profiles` with a MarkupError."""
    from pathlib import Path

    builtin = Path(__file__).parents[3] / "src/outlive/profiles/data/generic-ssh.toml"
    text = builtin.read_text().replace('name = "generic-ssh"', 'name = "mine"')
    text = text.replace('name = "no idle timer"', 'name = "no idle timer [/x]"')
    text = text.replace('name = "attached volume"', 'name = "volume [after 12 h]"')
    (tmp_path / "mine.toml").write_text(text)
    profile = load_profile("mine", [tmp_path])
    shown = _text(*render_profile(profile), render_overview([profile]))
    assert "no idle timer [/x]" in shown and "volume [after 12 h]" in shown
