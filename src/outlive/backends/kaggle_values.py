"""A kaggle target's table checked into :class:`~outlive.config.KaggleOptions`: the owner, the
kernel slug, the accelerator, the sources, and one version's session budget (the profile's
commit timeout for the machine asked for, less a margin to save in)."""

from __future__ import annotations

import re
from typing import Any

from outlive.backends.kaggle_render import ACCELERATORS, slug_problem
from outlive.config import KaggleOptions
from outlive.errors import ConfigError

_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_./-]+$")
_CLOCK = {True: "GPU commit timeout", False: "CPU commit timeout"}
MARGIN_S = 1800.0


def kaggle_options(t: Any, profile: Any) -> KaggleOptions:
    """The options of table ``t`` (a ``TargetTable``); a ConfigError of one sentence."""
    if t.host:
        raise ConfigError(
            "has host set, but a kaggle target is reached with the kaggle CLI from here "
            "(KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json); remove host"
        )
    if not t.owner or not _OWNER_RE.match(t.owner):
        raise ConfigError(
            f"owner = {t.owner!r} must be your Kaggle username (the account the kernels belong "
            'to), e.g. owner = "alice"'
        )
    if t.kernel_slug is not None:
        problem = slug_problem(t.kernel_slug)
        if problem:
            raise ConfigError(problem)
    accelerator = t.accelerator or "none"
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"accelerator = {accelerator!r} is not one of {', '.join(ACCELERATORS)}")
    for key in ("dataset_sources", "model_sources"):
        for ref in getattr(t, key):
            if not _SOURCE_RE.match(ref):
                raise ConfigError(f"{key} has {ref!r}, which is not an owner/slug reference")
    budget = t.session_budget_s or _profile_budget(profile, ACCELERATORS[accelerator] is not None)
    margin = t.session_margin_s if t.session_margin_s is not None else min(MARGIN_S, budget / 10)
    if margin >= budget:
        raise ConfigError(
            f"session_margin_s = {margin:g} is not below session_budget_s = {budget:g}; the job "
            "must run a while before it is stopped to save"
        )
    return KaggleOptions(
        owner=t.owner,
        kernel_slug=t.kernel_slug,
        accelerator=accelerator,
        internet=bool(t.internet),
        dataset_sources=tuple(t.dataset_sources),
        model_sources=tuple(t.model_sources),
        is_private=True if t.is_private is None else bool(t.is_private),
        budget_s=float(budget),
        margin_s=float(margin),
    )


def _profile_budget(profile: Any, gpu: bool) -> float:
    for clock in profile.clocks:
        if clock.name == _CLOCK[gpu] and clock.duration_s:
            return float(clock.duration_s)
    return float(profile.mtbf_s or 32400.0)
