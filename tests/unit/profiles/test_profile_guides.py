"""A profile that names a guide names a page that exists and states the platform's billing
facts (the guides are linked from `outlive profiles NAME`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.profiles import load_profile

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("runpod", ("$0.20/GB/mo", "RP4", "terminate", "cloud audit", "down runpod --confirm")),
        ("paperspace-core", ("PS1", "PS9", "$0.29/GB/mo", "cloud audit", "$3.00/mo")),
        ("paperspace-notebook", ("PS1", "PS2", "PS3", "$0.29/GB/mo", "until you delete it")),
    ],
)
def test_the_profiles_guide_exists_and_states_the_billing_facts(
    name: str, facts: tuple[str, ...]
) -> None:
    guide = load_profile(name).guide
    assert guide.startswith("docs/guides/")
    text = (REPO / guide).read_text(encoding="utf-8")
    for fact in facts:
        assert fact in text, (guide, fact)
