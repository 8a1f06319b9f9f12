"""outlive: run long GPU jobs on machines you rent or borrow, so that the result outlives the machine.

The public Python API is what a training script needs, and nothing else: ``Checkpointer`` and
``progress``. This package's top level imports only the standard library, because the same files
are shipped next to the job on a box where outlive is not installed.
"""

from __future__ import annotations

from outlive.ckpt import Checkpointer, progress

__all__ = ["Checkpointer", "__version__", "progress"]

__version__ = "0.1.0"
