"""Find, parse and validate profile files: the built-in ones and the user's own.

Built-in profiles are TOML files shipped in ``outlive/profiles/data``. A user adds a profile by
putting ``NAME.toml`` in a directory passed as ``extra_dirs``; a user file named like a built-in
replaces it, and a later directory wins over an earlier one. A file that does not parse or does
not validate raises :class:`~outlive.errors.ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from outlive.errors import ConfigError
from outlive.profiles.schema import DangerClock, Defaults, Profile, StorageTier, TeardownAction

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

__all__ = ["BUILTIN_ORDER", "builtin_names", "list_profiles", "load_profile", "parse_profile"]

# The order `outlive profiles` lists the built-ins in: the embedded default first, then from the
# barest box to the most managed platform.
BUILTIN_ORDER = (
    "local",
    "generic-ssh",
    "runpod",
    "paperspace-core",
    "paperspace-notebook",
    "slurm",
    "kubernetes",
    "colab",
    "kaggle",
)

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_SUFFIX = ".toml"


def builtin_names() -> list[str]:
    """Names of the profiles shipped with outlive, in listing order."""
    return _order(_builtin_files())


def load_profile(name: str, extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> Profile:
    """The profile called ``name``: a user file from ``extra_dirs`` if one exists, else built-in."""
    if not _NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid profile name; use lowercase letters, digits and dashes, "
            "e.g. 'runpod'."
        )
    user_files = _user_files(extra_dirs)
    if name in user_files:
        return _load_user_file(user_files[name])
    if name in _builtin_files():
        return _load_builtin(name)
    known = ", ".join(_order({**_builtin_files(), **user_files}))
    raise ConfigError(
        f"unknown profile {name!r}; pick one of: {known}, "
        f"or add {name}.toml to a profile directory."
    )


def list_profiles(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> list[Profile]:
    """Every profile, built-in and user, with user files replacing built-ins of the same name."""
    user_files = _user_files(extra_dirs)
    names = _order({**_builtin_files(), **user_files})
    return [
        _load_user_file(user_files[name]) if name in user_files else _load_builtin(name)
        for name in names
    ]


def parse_profile(text: str, origin: str, name: str | None = None) -> Profile:
    """Parse and validate the TOML ``text`` of a profile; ``origin`` names it in errors.

    ``name`` is the name the file implies (its stem): the file may leave ``name`` out, and if it
    gives one, the two must agree.
    """
    try:
        data = tomllib.loads(text)  # raw TOML, until Profile has validated it
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"profile file {origin} is not valid TOML ({exc}); fix the syntax at that spot."
        ) from exc
    except RecursionError:  # the parser recurses once per level of nesting
        raise ConfigError(
            f"profile file {origin} nests arrays or tables too deeply to read; flatten that value."
        ) from None
    if name is not None:
        given = data.setdefault("name", name)
        if given != name:
            raise ConfigError(
                f"profile file {origin}: key 'name' is {given!r} but the file is {name}.toml; "
                f"set name = {name!r} or rename the file to {given}.toml."
            )
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from exc


# --- files -----------------------------------------------------------------------------------


def _builtin_dir() -> Any:
    return resources.files("outlive.profiles").joinpath("data")


@functools.lru_cache(maxsize=1)
def _builtin_files() -> dict[str, str]:
    """Built-in profile name -> file name (a mapping, to merge with user files)."""
    found: dict[str, str] = {}
    for entry in _builtin_dir().iterdir():
        if entry.name.endswith(_SUFFIX) and entry.is_file():
            found[entry.name[: -len(_SUFFIX)]] = entry.name
    return found


@functools.lru_cache(maxsize=32)
def _load_builtin(name: str) -> Profile:
    # Built-ins are immutable data; parse each once per process.
    file_name = _builtin_files()[name]
    text = _builtin_dir().joinpath(file_name).read_text(encoding="utf-8")
    return parse_profile(text, f"<built-in>/{file_name}", name)


def _user_files(extra_dirs: Iterable[str | os.PathLike[str]]) -> dict[str, Path]:
    """Profile name -> path for every ``*.toml`` in the given directories; later ones win.

    A directory that does not exist is skipped, so callers can pass the conventional
    locations without checking them first.
    """
    if isinstance(extra_dirs, (str, os.PathLike)):
        # A lone path would otherwise be iterated character by character.
        extra_dirs = (extra_dirs,)
    found: dict[str, Path] = {}
    for raw in extra_dirs:
        directory = Path(raw).expanduser()
        if not directory.exists():
            continue
        if not directory.is_dir():
            raise ConfigError(
                f"profile directory {directory} is a file; pass the directory that holds "
                "your NAME.toml profile files."
            )
        for path in sorted(directory.glob(f"*{_SUFFIX}")):
            found[path.stem] = path
    return found


def _load_user_file(path: Path) -> Profile:
    name = path.stem
    if not _NAME.match(name):
        raise ConfigError(
            f"profile file {path} has an invalid name; rename it to lowercase letters, digits "
            "and dashes, e.g. my-cluster.toml."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"profile file {path} is not UTF-8 text; save it as UTF-8.") from exc
    except OSError as exc:
        raise ConfigError(
            f"profile file {path} cannot be read ({exc.strerror}); check its permissions."
        ) from exc
    return parse_profile(text, str(path), name)


def _order(names: Mapping[str, object]) -> list[str]:
    builtin = [name for name in BUILTIN_ORDER if name in names]
    return builtin + sorted(name for name in names if name not in BUILTIN_ORDER)


# --- error messages --------------------------------------------------------------------------

_MODELS: tuple[type[BaseModel], ...] = (Profile, StorageTier, TeardownAction, DangerClock, Defaults)
_TABLES: dict[str, type[BaseModel]] = {
    "storage": StorageTier,
    "teardown": TeardownAction,
    "clocks": DangerClock,
    "defaults": Defaults,
}


def _describe(exc: ValidationError, origin: str) -> str:
    """One sentence for the first problem in ``exc``, naming the key and the fix."""
    problems: dict[str, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        key = _key_path(loc)
        if error["type"] == "extra_forbidden":
            key = ".".join(filter(None, (_key_path(loc[:-1]), str(loc[-1]))))
        problems.setdefault(key, []).append(error)
    key, errors = next(iter(problems.items()))
    first = errors[0]
    field = key.rsplit(".", 1)[-1].split("[")[0]
    if first["type"] == "missing":
        what, fix = "is missing", f"add {field} = ... to the file"
    elif first["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(first["loc"]))
        what, fix = (
            "is not a profile key",
            f"remove it or correct its spelling (allowed: {allowed})",
        )
    elif isinstance(first["input"], dict):
        # A check across several keys of one table failed.
        what, fix = "is inconsistent", _clean(first["msg"])
    else:
        expected = " or ".join(dict.fromkeys(_clean(error["msg"]) for error in errors))
        what, fix = f"has the invalid value {first['input']!r}", f"use {expected}"
    where = f"key '{key}'" if key else "the profile as a whole"
    more = len(problems) - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''} in this file)" if more else ""
    return f"profile file {origin}: {where} {what}; fix: {fix}{tail}."


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``('storage', 1, 'survives_stop', 'bool')`` -> ``'storage[2].survives_stop'``.

    Indexes are counted from 1, as a reader counts ``[[storage]]`` tables in the file; the
    union-member tags pydantic appends (``'bool'``, ``"literal['depends','n/a']"``) are dropped.
    """
    fields = {name for model in _MODELS for name in model.model_fields}
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item + 1}]"
        elif item in fields:
            parts.append(item)
        else:
            break
    return ".".join(parts)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = Profile
    for item in loc[:-1]:
        if isinstance(item, str) and item in _TABLES:
            model = _TABLES[item]
    return sorted(model.model_fields)


_PLAIN = {
    "a valid boolean": "true or false",
    "a valid number": "a number (seconds for *_s keys)",
    "a valid string": "a quoted string",
    "a valid tuple": "an array [...]",
}


def _clean(message: str) -> str:
    """A pydantic message as the tail of our sentence: no prefix, TOML words, lower case."""
    for prefix in ("Value error, ", "Assertion failed, ", "Input should be "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    message = _PLAIN.get(message, message)
    return message[:1].lower() + message[1:]
