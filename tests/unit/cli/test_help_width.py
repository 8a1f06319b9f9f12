"""`--help` wraps, it never cuts: at a narrow and a normal terminal width every command's
description and every option's help appear whole, and ``outlive --help`` lists each command's
first sentence whole (issue 13, item 9)."""

from __future__ import annotations

import re
import sys

import pytest

from outlive.cli import main
from outlive.cli.grammar import COMMANDS, GROUPS
from outlive.cli.parser import first_sentence

WIDTHS = (60, 80)


def _squeezed(text: str) -> str:
    """The text without any whitespace: a wrapped line (argparse also breaks after a hyphen)
    still reads the same; a cut one does not."""
    return re.sub(r"\s+", "", text)


def _help(argv: list[str], columns: int, monkeypatch: pytest.MonkeyPatch, capsys) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(sys, "argv", ["outlive", *argv, "--help"])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    assert (done.value.code or 0, out.err) == (0, "")
    return str(out.out)


def test_every_help_text_appears_whole_at_narrow_and_normal_widths(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cut: list[str] = []
    for columns in WIDTHS:
        top = _help([], columns, monkeypatch, capsys)
        pages = [(cmd, _help(cmd.name.split(), columns, monkeypatch, capsys)) for cmd in COMMANDS]
        for group, text in GROUPS.items():
            page = _help([group], columns, monkeypatch, capsys)
            subs = [first_sentence(c.help) for c in COMMANDS if c.name.startswith(group + " ")]
            cut += [f"`outlive {group} --help`: {h!r}" for h in [text, *subs]
                    if _squeezed(h) not in _squeezed(page)]  # fmt: skip
        for cmd, page in [(None, top), *pages]:
            # The overview lists each command's first sentence, whole; its own page all of it.
            wanted = [first_sentence(c.help) for c in COMMANDS] if cmd is None else [cmd.help]
            if cmd is not None:
                wanted += [spec.help for _, _, spec in cmd.args.fields()]
            where = f"`outlive {cmd.name if cmd else ''} --help` at COLUMNS={columns}"
            cut += [f"{where}: {h!r}" for h in wanted if _squeezed(h) not in _squeezed(page)]
            lines = [ln for ln in page.splitlines() if not ln.lstrip().startswith("usage:")]
            cut += [f"{where}: {ln!r}" for ln in lines if ln.rstrip().endswith(("...", "…"))]
            cut += [f"{where}: line wider than the terminal: {ln!r}" for ln in lines
                    if len(ln) > columns and " " in ln.strip()]  # fmt: skip
    assert not cut, "\n".join(cut)
