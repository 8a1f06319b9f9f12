"""Provider fakes for the cloud tests, each test its own: a fresh fake process with the seeded
inventory, its key and URL exported, and no way to reach a real provider (HOME is a fresh
directory, so no key file of the user's is read; the other provider's key is unset)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outlive.testing import providers

_PROVIDER_ENV = (
    "RUNPOD_API_KEY",
    "OUTLIVE_RUNPOD_API_URL",
    "OUTLIVE_RUNPOD_KEY_FILE",
    "PAPERSPACE_API_KEY",
    "OUTLIVE_PAPERSPACE_API_URL",
    "OUTLIVE_PAPERSPACE_KEY_FILE",
)


@pytest.fixture(autouse=True)
def _no_real_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OUTLIVE_TESTBED_DIR", str(tmp_path / "testbed"))


def _fake(kind: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    doc = providers.up(kind, "t")
    try:
        for k, v in doc["env"].items():
            monkeypatch.setenv(k, v)
        yield doc["env"]
    finally:
        providers.down(kind, "t")


@pytest.fixture
def runpod(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The RunPod fake's env (exported): RUNPOD_API_KEY, OUTLIVE_RUNPOD_API_URL and
    OUTLIVE_RUNPOD_FAKE_URL (its control verbs)."""
    yield from _fake("runpod", monkeypatch)


@pytest.fixture
def paperspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The Paperspace fake's env (exported): PAPERSPACE_API_KEY, OUTLIVE_PAPERSPACE_API_URL and
    OUTLIVE_PAPERSPACE_FAKE_URL (its control verbs)."""
    yield from _fake("paperspace", monkeypatch)
