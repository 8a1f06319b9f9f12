"""argparse parsers built from ``outlive.cli.grammar``. Only the parser of the command being run
is built (start-up time); help comes back as text to print, and a usage error is a
``UsageError``: one sentence naming what is wrong and where the help is, exit 2."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, NoReturn

from outlive.cli.grammar import COMMANDS, DESCRIPTION, GROUPS, Command, find
from outlive.errors import UsageError

_HELP = ("-h", "--help")
_TYPES: dict[str, type[Any]] = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}


_INT_MAX = 2**31 - 1  # counts, ports, lines, rates: anything past this is a typo, not a wish
_FLOAT_MAX = 1e9  # seconds, intervals: about 30 years


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not -_INT_MAX <= value <= _INT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range (at most {_INT_MAX})")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not -_FLOAT_MAX <= value <= _FLOAT_MAX:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of at most {_FLOAT_MAX:g}")
    return value


def _path(text: str) -> Path:
    if not text:  # Path("") is ".": an empty --to would mean the current directory
        raise argparse.ArgumentTypeError("an empty path (give a path, or leave the option out)")
    return Path(text)


_CONVERT: dict[type[Any], Any] = {int: _int, float: _float, Path: _path}


class Invocation:
    """A parsed command line: the command and its arguments."""

    __slots__ = ("args", "command")

    def __init__(self, command: Command[Any], args: object) -> None:
        self.command, self.args = command, args

    def run(self) -> int:
        return self.command.load()(self.args)


class Help:
    """Help text to print on stdout, and the exit code after it (2: no command was given)."""

    __slots__ = ("exit_code", "text")

    def __init__(self, text: str, exit_code: int = 0) -> None:
        self.text, self.exit_code = text, exit_code


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
    own = find(name) if name in GROUPS else None  # a group that is a command too (`sweep`)
    if own is not None and rest and find(f"{name} {rest[0]}") is None:
        parsed = parse_command(own, rest)
        if isinstance(parsed, Help):  # its own options, then the group's sub-commands
            return Help(parsed.text + "\n" + group_help(name))
        return parsed
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
    fields = cmd.args.fields()
    rest_field = next((name for name, _, spec in fields if spec.rest), None)
    own, after = argv, list[str]()
    help_zone = argv
    if "--" in argv:
        cut = argv.index("--")
        help_zone = argv[:cut]
        if rest_field is not None:
            own, after = argv[:cut], argv[cut + 1 :]
    parser = build(cmd)
    if any(a in _HELP for a in help_zone):
        return Help(parser.format_help())
    values = vars(parser.parse_args(own))
    del values["help"]
    for name, annotation, _ in fields:
        if values[name] is None and _shape(annotation)[1]:
            values[name] = []  # an append option never given
    if rest_field is not None:
        values[rest_field] = [*values[rest_field], *after]
    return Invocation(cmd, cmd.args(**values))


def build(cmd: Command[Any]) -> argparse.ArgumentParser:
    """The argparse parser of one command, from its arguments class."""
    parser = _Parser(
        prog=f"outlive {cmd.name}", description=cmd.help, add_help=False, allow_abbrev=False
    )
    parser.add_argument(*_HELP, action="store_true", help="Show this help and exit.")
    for name, annotation, spec in cmd.args.fields():
        kind, repeated = _shape(annotation)
        kw: dict[str, Any] = {"help": spec.help}
        if spec.metavar is not None:
            kw["metavar"] = spec.metavar
        if kind is bool:
            action = argparse.BooleanOptionalAction if spec.negatable else "store_true"
            parser.add_argument(*spec.flags, dest=name, action=action, default=spec.default, **kw)
            continue
        if kind is not str:
            kw["type"] = _CONVERT.get(kind, kind)
        if spec.flags:
            if repeated:
                kw.update(action="append", default=None)
            elif spec.required:
                kw["required"] = True  # a required option (`move --to`)
            else:
                kw["default"] = spec.default
            parser.add_argument(*spec.flags, dest=name, **kw)
            continue
        kw.setdefault("metavar", name.upper())
        if repeated:
            kw["nargs"] = "*"
        elif not spec.required:
            kw.update(nargs="?", default=spec.default)
        parser.add_argument(name, **kw)
    return parser


def _shape(annotation: str) -> tuple[type[Any], bool]:
    """(element type, repeated) of a field's annotation: ``"int | None"`` → (int, False),
    ``"list[str]"`` → (str, True)."""
    bare = annotation.removesuffix(" | None")
    if bare.startswith("list[") and bare.endswith("]"):
        return _TYPES[bare[5:-1]], True
    return _TYPES[bare], False


def top_help() -> str:
    """``outlive --help``: every command with the first sentence of its help (whole, wrapped to
    the terminal; ``outlive COMMAND --help`` has the rest)."""
    rows = [(c.name, c.help) for c in COMMANDS]
    return (
        "usage: outlive COMMAND [ARGS]...\n\n"
        f"{_wrapped(DESCRIPTION)}\n\ncommands:\n{_table(rows)}\n"
        + _wrapped("`outlive COMMAND --help` describes a command and its options.")
        + "\n"
    )


def group_help(group: str) -> str:
    """``outlive GROUP --help``: the group's sub-commands."""
    rows = [(c.name, c.help) for c in COMMANDS if c.name == group or c.name.startswith(group + " ")]
    head = f"usage: outlive {group} COMMAND [ARGS]...\n\n{_wrapped(GROUPS[group])}\n\n"
    return head + f"commands:\n{_table(rows)}"


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")  # not after "e.g." before a lower case


def first_sentence(text: str) -> str:
    """The first whole sentence of a help text (what ``outlive --help`` lists)."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def _columns(least: int) -> int:
    import shutil

    return max(shutil.get_terminal_size().columns, least)


def _wrapped(text: str) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, _columns(40) - 1))


def _table(rows: list[tuple[str, str]]) -> str:
    import textwrap

    width = max(len(name) for name, _ in rows) + 4
    columns = _columns(width + 36)  # at least 36 columns of text beside the longest name
    out = []
    for name, text in rows:
        lines = textwrap.wrap(first_sentence(text), columns - width) or [""]
        out.append(f"  {name:<{width - 2}}{lines[0]}\n")
        out.extend(" " * width + line + "\n" for line in lines[1:])
    return "".join(out)
