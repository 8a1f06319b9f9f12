"""A Kaggle fake per test (its own name and dirs), driven by the real ``kaggle`` client."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from outlive.testing import providers


@pytest.fixture
def kaggle_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    name = f"kg{os.getpid()}-{uuid.uuid4().hex[:6]}"
    doc = providers.up("kaggle", name)
    try:
        for key, value in doc["env"].items():
            monkeypatch.setenv(key, value)
        yield dict(doc)
    finally:
        providers.down("kaggle", name)
