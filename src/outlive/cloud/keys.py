"""Provider API keys: from the environment, or a file only its owner can read (0600). Never a
command-line argument (it would show in ``ps`` and shell history, U34), never the run registry.

RunPod: ``RUNPOD_API_KEY``, else the file named by ``OUTLIVE_RUNPOD_KEY_FILE``, else
``~/.config/outlive/keys/runpod``. Paperspace: ``PAPERSPACE_API_KEY``, else
``OUTLIVE_PAPERSPACE_KEY_FILE``, else ``~/.config/outlive/keys/paperspace``. The API's base URL can
be pointed elsewhere (the testbed fakes do) with ``OUTLIVE_RUNPOD_API_URL`` /
``OUTLIVE_PAPERSPACE_API_URL``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from outlive.errors import ProviderAuthError

KEY_DIR = Path("~/.config/outlive/keys")


@dataclass(frozen=True)
class Credentials:
    """A provider's key, where it came from (for messages) and the API's base URL."""

    key: str = field(repr=False)
    source: str
    base_url: str


def key_env(provider: str) -> str:
    return f"{provider.upper()}_API_KEY"


def credentials(provider: str, default_url: str) -> Credentials | None:
    """The provider's key from the environment or its 0600 file; None when neither is set."""
    url = os.environ.get(f"OUTLIVE_{provider.upper()}_API_URL") or default_url
    env = key_env(provider)
    value = os.environ.get(env, "").strip()
    if value:
        return Credentials(value, f"${env}", url)
    named = os.environ.get(f"OUTLIVE_{provider.upper()}_KEY_FILE")
    path = Path(named).expanduser() if named else (KEY_DIR / provider).expanduser()
    try:
        st = path.stat()
    except OSError:
        if named:
            raise ProviderAuthError(
                f"OUTLIVE_{provider.upper()}_KEY_FILE names {path}, which cannot be read; "
                "point it at the file holding the key"
            ) from None
        return None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ProviderAuthError(
            f"{path} holds an API key but others can read it (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`"
        )
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        raise ProviderAuthError(f"{path} is empty; write the {provider} API key into it")
    return Credentials(text, str(path), url)
