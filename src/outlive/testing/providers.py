"""The provider fakes as testbeds: ``python -m outlive.testing runpod|paperspace up|down``.

``up`` starts the fake in a background process and returns ``{"name": N, "env": {...}}``:
export ``env`` and outlive's clients talk to the fake (the key, the API's base URL, and
``OUTLIVE_<KIND>_FAKE_URL``, where tests reach the fake's ``/_fake/`` control verbs)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any, TypedDict

from outlive.testing import _fakeserver
from outlive.testing.box import testbed_root

KINDS = ("runpod", "paperspace", "kaggle")


class FakeDoc(TypedDict):
    name: str
    env: dict[str, str]


def state_dir(kind: str, name: str) -> Path:
    return testbed_root() / f"{kind}-fake-{name}"


def up(kind: str, name: str) -> FakeDoc:
    running = _fakeserver.start(kind, name, state_dir(kind, name))
    if kind == "kaggle":
        from outlive.testing.kaggle_env import fake_doc

        return fake_doc(name, running)  # type: ignore[return-value]
    upper = kind.upper()
    return {
        "name": name,
        "env": {
            f"{upper}_API_KEY": running.key,
            f"OUTLIVE_{upper}_API_URL": running.url + "/v1",
            f"OUTLIVE_{upper}_FAKE_URL": running.url,
        },
    }


def down(kind: str, name: str) -> bool:
    return _fakeserver.stop(state_dir(kind, name))


def control(fake_url: str, verb: str, body: dict[str, Any] | None = None) -> Any:
    """Call a fake's control verb (``log``, ``ratelimit``, ``hang``, ``balance``...)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{fake_url}/_fake/{verb}", data=data, method="GET" if verb in ("log", "state") else "POST"
    )
    with _DIRECT.open(req, timeout=30) as resp:
        return json.loads(resp.read())


# The fakes listen on 127.0.0.1: never through a proxy. ``urlopen`` would cache, process-wide, an
# opener built from the HTTP_PROXY of its first call (a Kaggle fake's, which a later test has
# stopped), and refuse every later control call.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
