"""How commands reach a target: a Transport runs a command with stdin, and that is all."""

from __future__ import annotations

from outlive.transport.base import Completed, Transport
from outlive.transport.local import LocalTransport

__all__ = ["Completed", "LocalTransport", "Transport"]
