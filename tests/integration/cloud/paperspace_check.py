"""Check recorded Paperspace exchanges against tests/contracts/paperspace-v1.schema.json."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "paperspace-v1.schema.json"

# (method, path pattern) -> (schema of a 2xx body, or None for none; paged list item schema)
_OPS: dict[tuple[str, str], tuple[str | None, str | None]] = {
    ("GET", r"/machines"): ("Page", "Machine"),
    ("GET", r"/public-ips"): ("Page", "PublicIp"),
    ("GET", r"/snapshots"): ("Page", "Snapshot"),
    ("GET", r"/shared-drives"): ("Page", "SharedDrive"),
    ("GET", r"/machines/[^/]+"): ("Machine", None),
    ("PATCH", r"/machines/[^/]+/stop"): ("Machine", None),
    ("PATCH", r"/machines/[^/]+/start"): ("Machine", None),
    ("DELETE", r"/machines/[^/]+"): (None, None),
}


@cache
def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(CONTRACT.read_text())
    return doc


def _errors(name: str, value: Any) -> list[str]:
    schema = {"$ref": f"#/definitions/{name}", "definitions": _doc()["definitions"]}
    return [f"{name}: {e.message}" for e in Draft7Validator(schema).iter_errors(value)]


def problems(ex: dict[str, Any]) -> list[str]:
    op = next((v for (m, p), v in _OPS.items()
               if m == ex["method"] and re.fullmatch(p, ex["path"])), None)  # fmt: skip
    if op is None:
        return [f"{ex['method']} {ex['path']}: not an operation outlive uses"]
    body_schema, item = op
    out: list[str] = []
    if item is not None:
        for key, values in ex["query"].items():
            if key not in ("after", "limit"):
                out.append(f"query parameter {key!r} is not one of after, limit")
            elif key == "limit" and not (values[0].isdigit() and 1 <= int(values[0]) <= 120):
                out.append(f"limit {values[0]!r} is not 1 to 120")
    elif ex["query"]:
        out.append("query parameters on an operation that takes none")
    status = int(ex["status"])
    if status == 429:
        return out + (
            [] if "Retry-After" in ex["response_headers"] else ["429 without Retry-After"]
        )
    if status >= 400:
        return out + _errors("Error", ex["response"])
    if body_schema is None:
        return out + ([] if ex["response"] is None else ["a body where none is documented"])
    out += _errors(body_schema, ex["response"])
    if item is not None and isinstance(ex["response"], dict):
        for x in ex["response"].get("items", []):
            out += _errors(item, x)
    return out
