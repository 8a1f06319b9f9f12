"""``outlive move RUN --to TARGET`` (not implemented yet in this module's first step)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outlive.errors import UsageError

if TYPE_CHECKING:
    from outlive.session import Session


def move_run(session: Session, ref: str, to: str) -> dict[str, Any]:
    raise UsageError(f"outlive move is not available yet; cancel {ref} and relaunch it on {to}")
