"""argparse parsers built from ``outlive.cli.grammar``. Only the parser of the command being run
is built (start-up time); help comes back as text to print, and a usage error is a
``UsageError``: one sentence naming what is wrong and where the help is, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, NoReturn

from outlive.cli.grammar import COMMANDS, DESCRIPTION, GROUPS, Command, Spec, find
from outlive.errors import UsageError

_HELP = ("-h", "--help")


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the command and its arguments dataclass."""

    command: Command[Any]
    args: object

    def run(self) -> int:
        return self.command.load()(self.args)


@dataclass(frozen=True)
class Help:
    """Help text to print on stdout, and the exit code after it (2: no command was given)."""

    text: str
    exit_code: int = 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def parse(argv: list[str]) -> Invocation | Help:
    """``argv`` (without the program name) as a command and its arguments, or help to print."""
    if not argv:
        return Help(top_help(), 2)
    if argv[0] in _HELP:
        return Help(top_help())
    name, rest = argv[0], argv[1:]
    where = "outlive"
    if name in GROUPS:
        if not rest or rest[0] in _HELP:
            return Help(group_help(name), 0 if rest else 2)
        where = f"outlive {name}"
        name, rest = f"{name} {rest[0]}", rest[1:]
    cmd = find(name)
    if cmd is None:
        what = "option" if name.startswith("-") else "command"
        raise UsageError(f"no {what} {name!r} (see `{where} --help` for the commands)")
    return parse_command(cmd, rest)


def parse_command(cmd: Command[Any], argv: list[str]) -> Invocation | Help:
    """``argv`` as the arguments of ``cmd``; a ``rest()`` field takes everything after ``--``."""
    fields = dataclasses.fields(cmd.args)
    rest_field = next((f.name for f in fields if _spec(f).rest), None)
    own, after = argv, list[str]()
    if "--" in argv:
        cut = argv.index("--")
        if rest_field is not None:
            own, after = argv[:cut], argv[cut + 1 :]
        help_zone = argv[:cut]
    else:
        help_zone = argv
    parser = build(cmd)
    if any(a in _HELP for a in help_zone):
        return Help(parser.format_help())
    values = vars(parser.parse_args(own))
    values.pop("help", None)
    hints = typing.get_type_hints(cmd.args)
    for f in fields:
        if values[f.name] is None and _shape(hints[f.name])[1]:
            values[f.name] = []  # an append option never given
    if rest_field is not None:
        values[rest_field] = [*values[rest_field], *after]
    return Invocation(cmd, cmd.args(**values))


def build(cmd: Command[Any]) -> argparse.ArgumentParser:
    """The argparse parser of one command, from its arguments dataclass."""
    parser = _Parser(
        prog=f"outlive {cmd.name}", description=cmd.help, add_help=False, allow_abbrev=False
    )
    parser.add_argument(*_HELP, action="store_true", help="Show this help and exit.")
    hints = typing.get_type_hints(cmd.args)
    for f in dataclasses.fields(cmd.args):
        spec = _spec(f)
        kind, repeated = _shape(hints[f.name])
        kw: dict[str, Any] = {"help": spec.help}
        if spec.metavar is not None:
            kw["metavar"] = spec.metavar
        if kind is bool:
            action = argparse.BooleanOptionalAction if spec.negatable else "store_true"
            parser.add_argument(*spec.flags, dest=f.name, action=action, default=f.default, **kw)
            continue
        if kind is not str:
            kw["type"] = kind
        if spec.flags:
            if repeated:
                kw.update(action="append", default=None)
            else:
                kw["default"] = f.default
            parser.add_argument(*spec.flags, dest=f.name, **kw)
            continue
        kw.setdefault("metavar", f.name.upper())
        if repeated:
            kw["nargs"] = "*"
        elif f.default is not dataclasses.MISSING:
            kw.update(nargs="?", default=f.default)
        parser.add_argument(f.name, **kw)
    return parser


def _spec(f: dataclasses.Field[Any]) -> Spec:
    spec = f.metadata["cli"]
    if not isinstance(spec, Spec):  # pragma: no cover - a grammar mistake
        raise TypeError(f"field {f.name} has no command-line spec")
    return spec


def _shape(hint: Any) -> tuple[type[Any], bool]:
    """(element type, repeated) of a field's type: ``int | None`` → (int, False), ``list[str]``
    → (str, True)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True
    return hint, False


def top_help() -> str:
    """``outlive --help``: every command with the first sentence of its help."""
    rows = [(c.name, c.help) for c in COMMANDS]
    return (
        "usage: outlive COMMAND [ARGS]...\n\n"
        f"{DESCRIPTION}\n\ncommands:\n{_table(rows)}\n"
        "`outlive COMMAND --help` describes a command and its options.\n"
    )


def group_help(group: str) -> str:
    """``outlive GROUP --help``: the group's sub-commands."""
    rows = [(c.name, c.help) for c in COMMANDS if c.name.startswith(group + " ")]
    return (
        f"usage: outlive {group} COMMAND [ARGS]...\n\n{GROUPS[group]}\n\ncommands:\n{_table(rows)}"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    import shutil
    import textwrap

    width = max(len(name) for name, _ in rows) + 4
    columns = max(shutil.get_terminal_size().columns, width + 40)
    out = []
    for name, text in rows:
        first = text.split(". ")[0].rstrip(".") + "."
        lines = textwrap.wrap(first, columns - width) or [""]
        out.append(f"  {name:<{width - 2}}{lines[0]}\n")
        out.extend(" " * width + line + "\n" for line in lines[1:])
    return "".join(out)
