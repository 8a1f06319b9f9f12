"""Typed platform profiles: the facts outlive needs about a kind of box, as frozen data.

A profile says which storage survives which teardown verb, what each verb keeps billing, which
clocks end a run, and where a job's files go by default. Every figure carries a ``source`` that
names the seed section it comes from (``"seed 004 §5 teardown"``) or says it is an assumption.

The models use ``typing.Optional``/``Tuple`` rather than PEP 604 syntax on purpose: pydantic
evaluates the annotations at runtime and the package still supports Python 3.9.
"""

# ruff: noqa: UP045  (Optional[...] on purpose: pydantic evaluates these on Python 3.9 too)

from __future__ import annotations

import re
from typing import Annotated, Dict, Literal, Optional, Tuple, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

__all__ = [
    "GOTCHA_ID",
    "PLACEHOLDER",
    "ClockKind",
    "DangerClock",
    "Defaults",
    "Profile",
    "StorageTier",
    "Survival",
    "TeardownAction",
    "Trait",
]

# Strict scalars: a TOML string "30" or "yes" must not quietly become a number or a bool.
Seconds = Annotated[float, Field(ge=0, strict=True)]
Text = Annotated[str, Field(min_length=1, strict=True)]

# A fact the seeds give as yes / no / "depends on the host" / not stated at all.
Trait = Union[StrictBool, Literal["host-dependent", "unknown"]]

# Whether a tier survives an event: yes, no, "depends" (the provider decides: verify before
# acting), or "n/a" (the profile has no such event, e.g. nothing to destroy on Slurm).
Survival = Union[StrictBool, Literal["depends", "n/a"]]

ClockKind = Literal[
    "auto-shutdown",  # a timer that powers the box off
    "walltime",  # the scheduler's time limit for one job
    "session-cap",  # the longest a session or commit may run
    "idle-timeout",  # ends a session that shows no activity
    "quota",  # a budget of hours per period
    "grace",  # the window between the polite signal and the kill
    "billing",  # something keeps charging after you think it stopped
    "deletion",  # the platform deletes data on its own
    "capacity",  # a small default size that fills silently
    "sync-lag",  # a write that is not durable yet
]

# Gotcha IDs as numbered in the seeds: U1-U43 (universal), GEN1-8 (bare SSH), PS1-13 (Paperspace),
# RP1-13 (RunPod), SLURM1-5, K8S1-6 and NB1-5 (Colab / Kaggle).
GOTCHA_ID = re.compile(
    r"^(U([1-9]|[1-3][0-9]|4[0-3])|GEN[1-8]|PS([1-9]|1[0-3])|RP([1-9]|1[0-3])"
    r"|SLURM[1-5]|K8S[1-6]|NB[1-5])$"
)

# A source is either a seed section ("seed 004 §2 storage", "seed 002 Slurm diff") or says
# openly that it is not from the seeds.
_SOURCE = re.compile(r"^(seed 00[1-4] \S.*|assumption: \S.*|design: \S.*)$")

# Placeholder in default paths, replaced by the project name (see ``Defaults.resolve``).
PLACEHOLDER = "{project}"


def _check_source(value: str) -> str:
    if not _SOURCE.match(value):
        raise ValueError(
            "must name where the figure comes from: 'seed 00N <section>', "
            "'assumption: <why>' or 'design: <where>'"
        )
    return value


def _check_gotchas(value: Tuple[str, ...]) -> Tuple[str, ...]:
    bad = [item for item in value if not GOTCHA_ID.match(item)]
    if bad:
        raise ValueError(
            f"unknown gotcha ID(s) {', '.join(map(repr, bad))}; "
            "IDs look like U1-U43, GEN1-8, PS1-13, RP1-13, SLURM1-5, K8S1-6 or NB1-5"
        )
    if len(set(value)) != len(value):
        raise ValueError("gotcha IDs must not repeat")
    return value


Source = Annotated[str, AfterValidator(_check_source)]
GotchaIds = Annotated[Tuple[str, ...], AfterValidator(_check_gotchas)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageTier(_Frozen):
    """One place a job can write, and what happens to it on a stop and on a destroy."""

    name: Text
    path: Text
    speed: Text
    cap: Text
    shared: StrictBool
    survives_stop: Survival
    survives_destroy: Survival
    billing_running: Text
    billing_stopped: Text
    # How many times the running rate a stopped tier bills, where the seeds give a figure.
    stopped_billing_multiplier: Optional[Annotated[float, Field(ge=0, strict=True)]] = None
    note: str = ""
    source: Source


class TeardownAction(_Frozen):
    """A verb that stops (some of) the meter, with what it keeps billing and what it deletes."""

    verb: Text
    # The exact command where the seeds give one; None when it is a console click or
    # provider-specific.
    command: Optional[Text] = None
    stops_billing: Text
    keeps_billing: Text
    deletes: Text
    reversible: StrictBool
    note: str = ""
    source: Source


class DangerClock(_Frozen):
    """Something that ends a run, deletes data or keeps charging, on a known (or chosen) clock."""

    name: Text
    kind: ClockKind
    # None when the duration is chosen by the user or not fixed (a walltime, a billing trap);
    # for a quota, the budget per period (30 GPU-hours a week -> 108000).
    duration_s: Optional[Seconds] = None
    # The range the user may set, where the platform documents one.
    range_s: Optional[Tuple[Seconds, Seconds]] = None
    what_happens: Text
    surface_first: StrictBool
    gotchas: GotchaIds = ()
    source: Source

    @model_validator(mode="after")
    def _range_ordered(self) -> DangerClock:
        if self.range_s is not None and self.range_s[0] > self.range_s[1]:
            raise ValueError("range_s must be [shortest, longest]")
        return self


class Defaults(_Frozen):
    """Script-override defaults: where a job's files go and how it is detached.

    Paths may hold ``{project}`` (replaced by :meth:`resolve`) and shell variables such as
    ``$HOME`` or ``$TMPDIR``, which only the box can expand.
    """

    workdir: Text
    data_dir: Text
    durable_dir: Text
    # The storage tier (by name) that ``durable_dir`` lies on.
    durable_tier: Text
    scratch_dir: Text
    hf_home: Optional[Text] = None
    proxy_hook: Optional[Text] = None
    # Where credentials come from: "env" (platform secret as an env var), "file:<path>", ...
    cred_source: Text
    detach: Text
    source: Source

    def resolve(self, project: str) -> Defaults:
        """Return a copy whose paths have ``{project}`` replaced by ``project``."""
        update: Dict[str, str] = {}
        for key in ("workdir", "data_dir", "durable_dir", "scratch_dir", "hf_home"):
            value = getattr(self, key)
            if isinstance(value, str):
                update[key] = value.replace(PLACEHOLDER, project)
        return self.model_copy(update=update)


class Profile(_Frozen):
    """Everything outlive knows about one platform."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", strict=True)]
    title: Text
    summary: Text
    # Where the frontmatter facts come from, e.g. "seed 004 frontmatter".
    source: Source
    # The guide in outlive's docs for this platform (billing facts, commands), if there is one.
    guide: str = ""

    # The seed frontmatter, with units in names.
    kind: Literal["local", "ssh", "ssh-rental", "cloud-api", "slurm", "kubernetes", "notebook"]
    meter_stop_verb: Text
    meter_stop_irreversible: StrictBool
    detach_primitive: Text
    spot_available: StrictBool
    # SIGTERM -> SIGKILL window when the platform takes the machine back; None means no spot.
    spot_grace_s: Optional[Seconds] = None
    shared_fs: Trait
    inode_cap: Trait  # false: no inode cap is documented (still watch df -i, U7)
    free_egress: Trait
    china_mirror_needed: Trait
    host_driver_cuda_max: Text
    local_nvme: Trait

    # What "stop" and "destroy" mean here, for the survival matrix headings. None: no such event.
    stop_event: Text
    destroy_event: Optional[Text] = None

    # How long `outlive cancel` waits between TERM and KILL.
    kill_grace_s: Seconds
    kill_grace_source: Source
    # Mean time between interruptions, for checkpoint cadence; None: no interruption model.
    mtbf_s: Optional[Annotated[float, Field(gt=0, strict=True)]] = None
    mtbf_source: str = ""

    storage: Tuple[StorageTier, ...]
    teardown: Tuple[TeardownAction, ...] = ()
    clocks: Tuple[DangerClock, ...] = ()
    defaults: Defaults
    gotchas: GotchaIds = ()

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.spot_available != (self.spot_grace_s is not None):
            raise ValueError(
                "spot_grace_s must be set exactly when spot_available is true "
                "(leave it out for a platform without spot)"
            )
        if self.mtbf_s is not None:
            _check_source(self.mtbf_source)
        if not self.storage:
            raise ValueError("a profile needs at least one storage tier")
        names = [tier.name for tier in self.storage]
        if len(set(names)) != len(names):
            raise ValueError("storage tier names must be unique")
        if self.defaults.durable_tier not in names:
            raise ValueError(
                f"defaults.durable_tier {self.defaults.durable_tier!r} is not one of the "
                f"storage tiers: {', '.join(names)}"
            )
        for tier in self.storage:
            if (tier.survives_destroy == "n/a") != (self.destroy_event is None):
                raise ValueError(
                    f"storage tier {tier.name!r}: survives_destroy is 'n/a' exactly when the "
                    "profile has no destroy_event"
                )
        return self

    def tier(self, name: str) -> StorageTier:
        """The storage tier called ``name``."""
        for tier in self.storage:
            if tier.name == name:
                return tier
        raise KeyError(name)

    @property
    def durable(self) -> StorageTier:
        """The storage tier the default durable directory lies on."""
        return self.tier(self.defaults.durable_tier)

    def clocks_first(self) -> Tuple[DangerClock, ...]:
        """Danger clocks with the ones to surface up front first, the rest in file order."""
        return tuple(sorted(self.clocks, key=lambda clock: not clock.surface_first))

    def action(self, verb: str) -> TeardownAction:
        """The teardown action with this verb."""
        for action in self.teardown:
            if action.verb == verb:
                return action
        raise KeyError(verb)

    def clock(self, name: str) -> DangerClock:
        """The danger clock called ``name``."""
        for clock in self.clocks:
            if clock.name == name:
                return clock
        raise KeyError(name)
