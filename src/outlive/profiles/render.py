"""Rich tables and JSON for `outlive profiles`: danger clocks first, then survival, then teardown.

Only the CLI imports this module, so rich stays out of the way of everything that merely loads
a profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from outlive.profiles.schema import Profile, Survival, Trait

__all__ = [
    "format_duration",
    "overview_json",
    "render_clocks",
    "render_overview",
    "render_profile",
    "render_survival",
    "render_teardown",
    "to_json",
]

_DANGER = "bold red"


def to_json(profile: Profile) -> dict[str, Any]:
    """The profile as a plain JSON-able dict (what `outlive profiles NAME --json` prints)."""
    return profile.model_dump(mode="json")


def overview_json(profiles: Sequence[Profile]) -> dict[str, Any]:
    """``{"profiles": [...]}`` for `outlive profiles --json`."""
    return {"profiles": [to_json(profile) for profile in profiles]}


def format_duration(seconds: float | None) -> str:
    """Seconds in the unit the seeds would use: ``100`` -> ``'100 s'``, ``5400`` -> ``'90 min'``,
    ``108000`` -> ``'30 h'``, ``2592000`` -> ``'30 d'``; ``None`` -> ``'varies'``."""
    if seconds is None:
        return "varies"
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return _two_units(round(seconds), ("min", 60), ("s", 1))
    if seconds < 3 * 86400:
        return _two_units(round(seconds), ("h", 3600), ("min", 60))
    return _two_units(round(seconds), ("d", 86400), ("h", 3600))


def _two_units(seconds: int, big: tuple[str, int], small: tuple[str, int]) -> str:
    count, rest = divmod(seconds, big[1])
    text = f"{count} {big[0]}"
    if rest // small[1]:
        text += f" {rest // small[1]} {small[0]}"
    return text


def render_profile(profile: Profile) -> list[RenderableType]:
    """Everything `outlive profiles NAME` shows, in order: heading, danger clocks, survival
    matrix, teardown table, defaults, gotchas."""
    heading = Text.assemble(
        (profile.name, "bold"), f"  {profile.title} ({profile.kind})\n", profile.summary
    )
    if profile.guide:
        heading.append(f"\nGuide: {profile.guide}")
    return [
        heading,
        render_clocks(profile),
        render_survival(profile),
        render_teardown(profile),
        _render_defaults(profile),
        Text.assemble(("gotchas: ", "bold"), ", ".join(profile.gotchas) or "none"),
    ]


def render_clocks(profile: Profile) -> RenderableType:
    """The danger clocks, the ones to surface up front first, in bold red."""
    if not profile.clocks:
        return Text(f"Danger clocks: none on {profile.name}.", style="green")
    table = Table(title=f"⚠ Danger clocks — {profile.name}", title_style=_DANGER, expand=False)
    table.add_column("clock", style="bold")
    table.add_column("kind")
    table.add_column("after", justify="right")
    table.add_column("what happens", ratio=1)
    table.add_column("gotchas")
    for clock in profile.clocks_first():
        after = format_duration(clock.duration_s)
        if clock.range_s is not None:
            low, high = clock.range_s
            after += f" ({format_duration(low)}–{format_duration(high)})"
        style = _DANGER if clock.surface_first else None
        table.add_row(
            *_cells(clock.name, clock.kind, after, clock.what_happens, ", ".join(clock.gotchas)),
            style=style,
        )
    return table


def render_survival(profile: Profile) -> RenderableType:
    """Storage tiers against the profile's stop and destroy events."""
    table = Table(title=f"Survival matrix — {profile.name}", expand=False)
    table.add_column("tier", style="bold")
    table.add_column("path")
    table.add_column(f"survives {profile.stop_event}?", justify="center")
    table.add_column(f"survives {profile.destroy_event or 'destroy'}?", justify="center")
    table.add_column("shared", justify="center")
    table.add_column("speed")
    table.add_column("cap")
    table.add_column("billing running")
    table.add_column("billing stopped")
    for tier in profile.storage:
        durable = " (durable)" if tier.name == profile.defaults.durable_tier else ""
        table.add_row(
            *_cells(
                tier.name + durable,
                tier.path,
                _survival(tier.survives_stop),
                _survival(tier.survives_destroy),
                _trait(tier.shared),
                tier.speed,
                tier.cap,
                tier.billing_running,
                tier.billing_stopped,
            )
        )
    return table


def render_teardown(profile: Profile) -> RenderableType:
    """What each teardown verb stops, keeps billing and deletes."""
    if not profile.teardown:
        return Text(f"Teardown: none; {profile.name} has no meter to stop.")
    table = Table(title=f"Teardown — {profile.name}", expand=False)
    table.add_column("verb", style="bold")
    table.add_column("command")
    table.add_column("stops billing")
    table.add_column("keeps billing")
    table.add_column("deletes")
    table.add_column("reversible", justify="center")
    for action in profile.teardown:
        table.add_row(
            *_cells(action.verb, action.command or "(console / provider)", action.stops_billing),
            Text(action.keeps_billing, style="yellow"),
            Text(action.deletes, style="" if action.reversible else _DANGER),
            _trait(action.reversible),
        )
    return table


def render_overview(profiles: Sequence[Profile]) -> RenderableType:
    """One row per profile for `outlive profiles`: danger first, then the meter and the grace."""
    table = Table(title="Platform profiles", expand=False)
    table.add_column("profile", style="bold")
    table.add_column("danger clocks (up front)", style=_DANGER, ratio=1)
    table.add_column("meter stop")
    table.add_column("irreversible", justify="center")
    table.add_column("spot grace", justify="right")
    table.add_column("kill grace", justify="right")
    table.add_column("durable default")
    for profile in profiles:
        first = [clock for clock in profile.clocks if clock.surface_first]
        clocks = "; ".join(_clock_label(clock.name, clock.duration_s) for clock in first)
        spot = "no spot" if profile.spot_grace_s is None else format_duration(profile.spot_grace_s)
        table.add_row(
            *_cells(
                profile.name,
                clocks or Text("none", style="green"),
                profile.meter_stop_verb,
                _trait(profile.meter_stop_irreversible),
                spot,
                format_duration(profile.kill_grace_s),
                profile.defaults.durable_dir,
            )
        )
    return Group(table, Text("Details: outlive profiles NAME", style="dim"))


def _render_defaults(profile: Profile) -> RenderableType:
    defaults = profile.defaults
    table = Table(title=f"Defaults — {profile.name}", show_header=False, expand=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    rows: list[tuple[str, str]] = [
        ("workdir", defaults.workdir),
        ("durable", f"{defaults.durable_dir}  (on {defaults.durable_tier})"),
        ("data", defaults.data_dir),
        ("scratch", defaults.scratch_dir),
        ("HF_HOME", defaults.hf_home or "(platform default)"),
        ("proxy hook", defaults.proxy_hook or "none"),
        ("credentials", defaults.cred_source),
        ("detach", defaults.detach),
        ("kill grace", format_duration(profile.kill_grace_s)),
        (
            "spot grace",
            "no spot" if profile.spot_grace_s is None else format_duration(profile.spot_grace_s),
        ),
        ("MTBF for cadence", "none" if profile.mtbf_s is None else format_duration(profile.mtbf_s)),
    ]
    for setting, value in rows:
        table.add_row(*_cells(setting, value))
    return table


def _cells(*values: str | Text) -> list[Text]:
    """A row's cells as text, never markup: a profile file's "[after 12 h]" is shown, not taken
    for a style (and dropped), and its "[/x]" cannot stop the command."""
    return [value if isinstance(value, Text) else Text(value) for value in values]


def _clock_label(name: str, duration_s: float | None) -> str:
    return name if duration_s is None else f"{name} ({format_duration(duration_s)})"


def _survival(value: Survival) -> Text:
    if value == "n/a":
        return Text("n/a", style="dim")
    if value == "depends":
        return Text("depends", style="yellow")
    return _trait(value)


def _trait(value: Union[Trait, Survival]) -> Text:
    if value is True:
        return Text("yes", style="green")
    if value is False:
        return Text("no", style=_DANGER)
    return Text(str(value), style="yellow")
