"""How commands and files reach a target: a Transport runs a command with stdin and says how
rsync reaches the target (``files``); only this package builds an ssh command line."""

from __future__ import annotations

from outlive.transport.base import Completed, Transport
from outlive.transport.files import Direction, RsyncOptions
from outlive.transport.local import LocalTransport

__all__ = ["Completed", "Direction", "LocalTransport", "RsyncOptions", "Transport"]
