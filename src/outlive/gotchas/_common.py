"""Shared constants for the catalog modules: who handles an entry and how that is proved."""

from __future__ import annotations

from outlive.gotchas.model import Handling

__all__ = [
    "DETECTS",
    "DOCUMENTS",
    "EXPLAIN",
    "EXPLAIN_PROOF_TEST",
    "PREVENTS",
    "REFERENCE",
    "beyond_proof",
    "explain_proof",
]

PREVENTS = Handling.PREVENTS
DETECTS = Handling.DETECTS
DOCUMENTS = Handling.DOCUMENTS

EXPLAIN = "outlive explain"
REFERENCE = "outlive gotcha (reference only)"

# The parametrised test that runs each entry's realistic example log through the engine.
EXPLAIN_PROOF_TEST = "tests/unit/gotchas/test_gotcha_examples.py::test_example_log_fires"


def explain_proof(gotcha_id: str) -> str:
    """The pytest node id proving that ``outlive explain`` recognises ``gotcha_id``."""
    return f"{EXPLAIN_PROOF_TEST}[{gotcha_id}]"


# Each entry beyond the seeds has its own proof test, named after it, that runs its public logs.
BEYOND_PROOF_FILE = "tests/unit/gotchas/test_beyond_catalog.py"


def beyond_proof(name: str) -> str:
    """The pytest node id of ``test_<name>`` in the beyond-the-seeds proof file."""
    return f"{BEYOND_PROOF_FILE}::test_{name}"
