"""nbformat v4 documents built as plain JSON (the schema is small; tests validate with nbformat)."""

from __future__ import annotations

import json
from typing import Any


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return lines or [""]


def code(source: str, cell_id: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": cell_id,
        "metadata": {},
        "outputs": [],
        "source": _lines(source),
    }


def markdown(source: str, cell_id: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": _lines(source)}


def notebook(cells: list[dict[str, Any]], *, gpu: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    if gpu:
        metadata["accelerator"] = "GPU"  # Colab's runtime type (Runtime -> Change runtime type)
        metadata["colab"] = {"provenance": []}
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
