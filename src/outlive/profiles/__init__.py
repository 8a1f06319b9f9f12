"""Platform profiles: what survives which teardown verb, what keeps billing, which clocks end a run.

``load_profile`` / ``list_profiles`` read the built-in TOML files (and the user's own);
``outlive.profiles.render`` turns a profile into rich tables and is imported only by the CLI,
so that loading a profile stays cheap.
"""

from __future__ import annotations

from outlive.profiles.registry import builtin_names, list_profiles, load_profile, parse_profile
from outlive.profiles.schema import (
    DangerClock,
    Defaults,
    Profile,
    StorageTier,
    TeardownAction,
)

__all__ = [
    "DangerClock",
    "Defaults",
    "Profile",
    "StorageTier",
    "TeardownAction",
    "builtin_names",
    "list_profiles",
    "load_profile",
    "parse_profile",
]
