"""Check recorded HTTP exchanges against a vendored OpenAPI 3.0 document with ``jsonschema``.

Strict on purpose: an object schema with ``properties`` admits no other property (so the fake
cannot invent fields), every query parameter must be declared, a documented status without
content must come with an empty body, and OpenAPI's ``nullable`` becomes a JSON-schema null.
Beyond the documented statuses only 401 (the document's global bearer scheme; body
``UnauthorizedError``) and 429 (rate limiting; needs ``Retry-After``) are accepted."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
_URN = "urn:contract"


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(x) for x in node]
    return node


@cache
def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CONTRACTS / name).read_text())
    return doc


@cache
def _registry(name: str) -> Registry:
    strict = _strict(copy.deepcopy(load(name)))
    return Registry().with_resource(_URN, Resource.from_contents(strict, DRAFT7))


def _validate(name: str, pointer: str, value: Any) -> list[str]:
    validator = Draft7Validator({"$ref": f"{_URN}#{pointer}"}, registry=_registry(name))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(value)
    ]


def _operation(doc: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for template in doc["paths"]:
        names = re.findall(r"{(\w+)}", template)
        pattern = "^" + re.sub(r"{\w+}", "([^/]+)", template) + "$"
        m = re.match(pattern, path)
        if m and method.lower() in doc["paths"][template]:
            return template, dict(zip(names, m.groups(), strict=True))
    return None


def _param_value(schema: dict[str, Any], raw: list[str]) -> Any:
    kind = schema.get("type")
    if kind == "array":
        return raw
    value: Any = raw[0] if len(raw) == 1 else raw
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind in ("integer", "number"):
        try:
            return int(value) if kind == "integer" else float(value)
        except (TypeError, ValueError):
            return value
    return value


def problems(name: str, ex: dict[str, Any]) -> list[str]:
    """Everything wrong with one exchange (``method, path, query, body, status,
    response_headers, response``) against the document ``name``; empty when it validates."""
    doc = load(name)
    found = _operation(doc, ex["method"], ex["path"])
    if found is None:
        return [f"{ex['method']} {ex['path']}: no such operation in {name}"]
    template, path_args = found
    op_ptr = "/paths/" + template.replace("~", "~0").replace("/", "~1") + "/" + ex["method"].lower()
    op = doc["paths"][template][ex["method"].lower()]
    out: list[str] = []
    params = {p["name"]: (i, p) for i, p in enumerate(op.get("parameters", []))}
    for key, raw in ex["query"].items():
        if key not in params or params[key][1]["in"] != "query":
            out.append(f"query parameter {key!r} is not declared")
            continue
        i, p = params[key]
        out += [
            f"query {key}: {e}"
            for e in _validate(
                name, f"{op_ptr}/parameters/{i}/schema", _param_value(p["schema"], raw)
            )
        ]
    for key, value in path_args.items():
        i, p = params[key]
        out += [
            f"path {key}: {e}" for e in _validate(name, f"{op_ptr}/parameters/{i}/schema", value)
        ]
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        out += [
            f"request body: {e}"
            for e in _validate(
                name, f"{op_ptr}/requestBody/content/application~1json/schema", ex["body"]
            )
        ]
    elif ex["body"] is not None:
        out.append("a request body where the operation takes none")
    status = str(ex["status"])
    if status == "401":
        return out + [
            f"401 body: {e}"
            for e in _validate(name, "/components/schemas/UnauthorizedError", ex["response"])
        ]
    if status == "429":
        if "Retry-After" not in ex["response_headers"]:
            out.append("429 without Retry-After")
        return out
    if status not in op["responses"]:
        return [*out, f"status {status} is not documented for {ex['method']} {template}"]
    content = op["responses"][status].get("content", {}).get("application/json")
    if content is None:
        if ex["response"] is not None:
            out.append(f"a {status} body where the document gives none")
    else:
        out += [
            f"{status} body: {e}"
            for e in _validate(
                name,
                f"{op_ptr}/responses/{status}/content/application~1json/schema",
                ex["response"],
            )
        ]
    return out
