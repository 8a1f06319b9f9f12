"""outlive: run long GPU jobs on rented or borrowed machines so that the result outlives them.

The public Python API is what a training script needs, and nothing else: ``Checkpointer`` and
``progress``. This package's top level imports only the standard library, because the same files
are shipped next to the job on a box where outlive is not installed; the names load on first use
so that the CLI, which imports ``outlive.errors``, does not pay for the checkpoint core.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs a look ~15 ms (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from outlive.ckpt import Checkpointer, progress

__all__ = ["Checkpointer", "__version__", "progress"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Checkpointer", "progress"):
        import outlive.ckpt

        return getattr(outlive.ckpt, name)
    raise AttributeError(f"module 'outlive' has no attribute {name!r}")
