"""The Kaggle fake as the real ``kaggle`` client sees it: auth, ERROR with its message,
the session limit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from outlive.backends.kaggle_cli import KaggleCli, Status
from outlive.errors import TransportError
from outlive.testing import providers

DEADLINE_S = 60.0


def _push(tmp: Path, owner: str, slug: str, body: str) -> int:
    folder = tmp / slug
    folder.mkdir()
    meta = {"id": f"{owner}/{slug}", "title": slug, "code_file": "s.py", "language": "python",
            "kernel_type": "script", "is_private": True, "enable_gpu": False,
            "enable_internet": False}  # fmt: skip
    (folder / "kernel-metadata.json").write_text(json.dumps(meta))
    (folder / "s.py").write_text(body)
    return KaggleCli().push(folder)


def _ended(ref: str) -> Status:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        status = KaggleCli().status(ref)
        if status.status in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{ref} did not end in {DEADLINE_S:g} s")


def test_kaggle_fake_refuses_a_wrong_key(
    kaggle_fake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    with pytest.raises(TransportError, match="kernels status failed"):
        KaggleCli().status(f"{kaggle_fake['target']['owner']}/nothing-here")
    log = providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "log")
    assert [e["status"] for e in log["exchanges"]] == [401]


def test_kaggle_fake_error_carries_the_failure_message(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    owner = kaggle_fake["target"]["owner"]
    _push(tmp_path, owner, "boom-kernel", "raise SystemExit('the data is missing')\n")
    status = _ended(f"{owner}/boom-kernel/1")
    assert status.status == "ERROR"
    assert status.failure is not None and "the data is missing" in status.failure


def test_kaggle_fake_session_limit_stops_the_version_in_error(
    tmp_path: Path, kaggle_fake: dict[str, Any]
) -> None:
    owner = kaggle_fake["target"]["owner"]
    providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "config",
                      {"session_limit_s": 1, "grace_s": 1})  # fmt: skip
    _push(tmp_path, owner, "slow-kernel", "import time\nwhile True: time.sleep(0.1)\n")
    status = _ended(f"{owner}/slow-kernel/1")
    assert status.status == "ERROR"
    assert status.failure is not None and "max allowed execution duration" in status.failure


def test_fake_control_never_goes_through_the_proxy(
    kaggle_fake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a proxy that refuses (a stopped fake's port): control still reaches the fake directly
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    log = providers.control(kaggle_fake["env"]["OUTLIVE_KAGGLE_FAKE_URL"], "log")
    assert log["exchanges"] == []
