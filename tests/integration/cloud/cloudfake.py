"""Helpers for the cloud tests: the fakes' control verbs and exchange logs."""

from __future__ import annotations

from outlive.testing import providers


def fake_log(env: dict[str, str], kind: str = "runpod") -> list[dict[str, object]]:
    log = providers.control(env[f"OUTLIVE_{kind.upper()}_FAKE_URL"], "log")
    exchanges: list[dict[str, object]] = log["exchanges"]
    return exchanges


def control(env: dict[str, str], verb: str, body: dict[str, object] | None = None,
            kind: str = "runpod") -> object:  # fmt: skip
    return providers.control(env[f"OUTLIVE_{kind.upper()}_FAKE_URL"], verb, body)
