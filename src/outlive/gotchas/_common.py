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
