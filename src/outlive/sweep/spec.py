"""A sweep file read into items: a command template and its parameter sets.

```toml
name = "lr"                                    # optional; the file's stem by default
command = "python train.py --lr {lr} --seed {seed}"   # shell words, or a list of words
[grid]                                         # every combination, in this order ...
lr = [0.1, 0.01]
seed = [1, 2]
# ... or a list of parameter tables:  [[list]]  lr = 0.1  seed = 1
```

With ``--items FILE`` each non-blank line (``#`` comments skipped) is one item, bound to the
placeholder ``{item}``. Each item becomes the run ``<sweep>.<key>``: run names are one directory
under the durable path, so ``/`` cannot separate them. Every problem is one ``UsageError``
sentence, raised before anything is launched.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from outlive import wire
from outlive._textfile import read_text
from outlive.errors import UsageError

SEPARATOR = "."
ITEM_PLACEHOLDER = "item"
MAX_KEY_BYTES = 80
MAX_ITEMS = 10_000  # each item is a named run, a registry row and a checkpoint directory
Value = str | int | float | bool


@dataclass(frozen=True)
class Item:
    """One item of a sweep: its key, its parameters and the command they make."""

    key: str
    params: dict[str, Value]
    command: list[str]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str
    template: list[str]
    items: list[Item]

    def run_name(self, key: str) -> str:
        return f"{self.name}{SEPARATOR}{key}"


def read_spec(path: Path, items_file: Path | None = None) -> SweepSpec:
    """The sweep in ``path`` (TOML), with the items of ``items_file`` when given."""
    import tomllib

    try:
        doc = tomllib.loads(read_text(path, "sweep file"))
    except OSError as exc:
        why = exc.strerror or exc
        raise UsageError(f"cannot read sweep file {path} ({why}); check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"sweep file {path} is not valid TOML ({exc}); fix it and rerun") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise UsageError(
            f"sweep file {path} nests arrays or tables too deeply to read; flatten it and rerun"
        ) from None
    unknown = sorted(set(doc) - {"name", "command", "grid", "list"})
    if unknown:
        raise UsageError(
            f"sweep file {path} has unknown keys {unknown}; use name, command, grid, list"
        )
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", name):
        raise UsageError(
            f"sweep name {name!r} in {path} must be 1-64 letters, digits, '_' or '-'; "
            'set name = "..." in the file'
        )
    template = _template(path, doc.get("command"))
    if items_file is not None:
        if "grid" in doc or "list" in doc:
            raise UsageError(
                f"give the items either in {path} (grid/list) or with --items, not both"
            )
        param_sets: list[dict[str, Value]] = [
            {ITEM_PLACEHOLDER: line} for line in _lines(items_file)
        ]
    else:
        param_sets = _param_sets(path, doc)
    items = _items(path, template, param_sets)
    for item in items:
        problem = wire.name_problem(f"{name}{SEPARATOR}{item.key}")
        if problem is not None:
            raise UsageError(f"sweep {name!r}: {problem}; shorten the sweep name")
    return SweepSpec(name=name, source=str(path.resolve()), template=template, items=items)


def _template(path: Path, command: object) -> list[str]:
    if isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"the command in {path} cannot be split into words ({exc})") from None
    elif isinstance(command, list) and all(isinstance(w, str) for w in command):
        words = list(command)
    else:
        raise UsageError(f'sweep file {path} needs command = "..." (a string or a list of words)')
    if not words or any("\x00" in w for w in words):
        raise UsageError(f"the command in {path} is empty or holds a NUL byte")
    for word in words:
        placeholders(path, word)  # malformed braces fail here, once, for the whole sweep
    return words


def placeholders(path: Path, word: str) -> list[str]:
    """The ``{name}`` fields of one template word (``{{``/``}}`` are literal braces)."""
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(word)]
    except ValueError as exc:
        why = f"malformed placeholder in {word!r} ({exc}); write a literal brace as {{{{ or }}}}"
        raise UsageError(f"the command in {path} has a {why}") from None
    fields = [f for f, _, _ in parsed if f is not None]
    bad = [f for f, spec, conv in parsed if f is not None and (spec or conv)]
    if bad or any(not f.isidentifier() for f in fields):
        raise UsageError(f"the command in {path} has a placeholder other than {{name}} in {word!r}")
    return fields


def _param_sets(path: Path, doc: Mapping[str, object]) -> list[dict[str, Value]]:
    grid, listed = doc.get("grid"), doc.get("list")
    if (grid is None) == (listed is None):
        raise UsageError(f"sweep file {path} needs exactly one of [grid] or [[list]]")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise UsageError(f"[grid] in {path} must be a table of parameter = [values]")
        names = list(grid)
        columns = []
        for key in names:
            values = grid[key]
            if not isinstance(values, list) or not values:
                raise UsageError(f"grid parameter {key!r} in {path} must be a non-empty list")
            columns.append([_value(path, key, v) for v in values])
        _check_count(path, math.prod(len(c) for c in columns), "[grid] makes")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*columns)]
    if not isinstance(listed, list) or not listed or not all(isinstance(t, dict) for t in listed):
        raise UsageError(f"list in {path} must be a non-empty array of tables ([[list]])")
    _check_count(path, len(listed), "[[list]] has")
    return [{k: _value(path, k, v) for k, v in table.items()} for table in listed]


def _check_count(path: Path, count: int, what: str) -> None:
    """Refuse a sweep of more than MAX_ITEMS items before any is made (a grid's product grows
    past any memory long before it is listed)."""
    if count > MAX_ITEMS:
        raise UsageError(
            f"{what} {count:,} items in {path}, more than the {MAX_ITEMS:,} a sweep may hold; "
            "split it into several sweeps or use fewer values"
        )


def _value(path: Path, key: str, value: object) -> Value:
    if isinstance(value, str | int | float | bool):
        return value
    raise UsageError(f"parameter {key!r} in {path} must be a string, number or boolean")


def _lines(items_file: Path) -> list[str]:
    try:
        text = read_text(items_file, "items file")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read items file {items_file} ({exc}); check the path") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise UsageError(f"items file {items_file} holds no item")
    _check_count(items_file, len(lines), "the items file has")
    return lines


def render(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _items(path: Path, template: Sequence[str], sets: list[dict[str, Value]]) -> list[Item]:
    used = {f for word in template for f in placeholders(path, word)}
    items: list[Item] = []
    keys: set[str] = set()
    for n, params in enumerate(sets, 1):
        missing = sorted(used - set(params))
        if missing:
            have = ", ".join(sorted(params)) or "none"
            raise UsageError(
                f"the command in {path} uses {{{missing[0]}}}, which item {n} does not give "
                f"(its parameters: {have})"
            )
        text = {k: render(v) for k, v in params.items()}
        command = [w.format_map(text) for w in template]
        key = item_key(text)
        if key in keys:
            raise UsageError(f"item {n} of {path} repeats an earlier item's parameters ({key})")
        keys.add(key)
        items.append(Item(key=key, params=dict(params), command=command))
    return items


def item_key(params: Mapping[str, str]) -> str:
    """A readable key that stays the same for the same parameters (so a grown file keeps it)."""
    if list(params) == [ITEM_PLACEHOLDER]:
        raw = params[ITEM_PLACEHOLDER]
    else:
        raw = "_".join(f"{k}={v}" for k, v in params.items())
    key = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", raw).strip("-.") or "item"
    if key != raw or len(key.encode()) > MAX_KEY_BYTES:
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
        key = f"{key[: MAX_KEY_BYTES - 9]}-{digest}"
    return key
