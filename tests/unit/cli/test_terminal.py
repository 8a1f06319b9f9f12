"""Text from users, jobs, boxes and providers reaches a terminal as text: every control character
a terminal acts on (C0 but tab, DEL, C1, the bidi controls) is shown as its escape, in one-line
messages and in rich output alike."""

from __future__ import annotations

import io

import pytest

from outlive.cli._terminal import markup, plain, printable
from outlive.cli.output import echo, note

HOSTILE = "run\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\x7f\u202etxt.exe\r\nnext"


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest() -> None:
    assert printable(HOSTILE) == (
        "run\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x9b31m\\x7f\\u202etxt.exe\\r\\nnext"
    )
    kept = "tab\there ünïcödé ✓ 日本 [bold] $(x) 'q'"
    assert printable(kept) == kept


def test_markup_and_plain_are_never_read_as_rich_markup() -> None:
    from rich.console import Console

    out = io.StringIO()
    con = Console(file=out, highlight=False, width=200)
    con.print(f"[bold]name:[/bold] {markup('[/INST] [link=http://x]y[/link]')}")
    con.print(plain("[red]not red[/red]\x1b[2J"))
    assert out.getvalue() == "name: [/INST] [link=http://x]y[/link]\n[red]not red[/red]\\x1b[2J\n"


@pytest.mark.parametrize("say", [note, echo])
def test_a_note_or_a_line_carrying_a_boxs_words_cannot_drive_the_terminal(
    say: object, capsys: pytest.CaptureFixture[str]
) -> None:
    say(f"the box says {HOSTILE}")  # type: ignore[operator]
    out, err = capsys.readouterr()
    text = out + err
    assert text.count("\n") == 1 and "\x1b" not in text and "\x9b" not in text
    assert "\x07" not in text and "\u202e" not in text and "\\x1b]52;c;" in text
