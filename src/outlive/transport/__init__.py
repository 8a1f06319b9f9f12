"""How commands and files reach a target: a Transport runs a command with stdin and says how
rsync reaches the target (``files``); only this package builds an ssh command line.

The names load on first use: ``transport.ahead`` is imported before the CLI's other imports
(its point is to start an ssh handshake early) and must not pay for ``base`` and ``files``."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the ahead path does not import typing
if TYPE_CHECKING:
    from typing import Any

    from outlive.transport.base import Completed, Transport
    from outlive.transport.files import Direction, RsyncOptions
    from outlive.transport.local import LocalTransport

__all__ = ["Completed", "Direction", "LocalTransport", "RsyncOptions", "Transport"]

_WHERE = {
    "Completed": "base",
    "Transport": "base",
    "Direction": "files",
    "RsyncOptions": "files",
    "LocalTransport": "local",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'outlive.transport' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"outlive.transport.{where}"), name)
