"""What ``python -m outlive.testing kaggle up`` prints: the environment that points the official
``kaggle`` client (and outlive's kaggle backend, which runs it) at the fake, and a target."""

from __future__ import annotations

from typing import Any

from outlive.testing._fakeserver import Running
from outlive.testing.kaggle_fake import USER


def fake_doc(name: str, running: Running) -> dict[str, Any]:
    config_dir = running.state_dir / "client-config"  # never the user's ~/.kaggle
    config_dir.mkdir(mode=0o700, exist_ok=True)
    proxy = running.url  # the client reaches "http://localhost" through it (kagglesdk LOCALHOST)
    return {
        "name": name,
        "target": {"profile": "kaggle", "owner": USER, "accelerator": "none", "internet": False},
        "env": {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "KAGGLE_CONFIG_DIR": str(config_dir),
            "KAGGLE_USERNAME": USER,
            "KAGGLE_KEY": running.key,
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            "NO_PROXY": "",
            "no_proxy": "",
            "OUTLIVE_KAGGLE_FAKE_URL": running.url,
        },
    }
