"""Text from users, jobs, boxes and providers reaches a terminal as text: every control character
a terminal acts on (C0 but tab, DEL, C1, the bidi controls) is shown as its escape, in one-line
messages and in rich output alike."""

from __future__ import annotations

import io

import pytest

from outlive.cli._terminal import StringSequenceGuard, markup, plain, printable
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


def test_a_log_on_a_terminal_keeps_colours_and_progress_but_loses_string_sequences() -> None:
    """What `logs` shows on a terminal: a job's colours and \\r progress bars as they are; an
    OSC 52 (clipboard), a title or a hyperlink (7-bit or C1, split across chunks or not) gone."""
    guard = StringSequenceGuard()
    kept = "\x1b[31mred\x1b[0m 50%\r60% £é 日本\n".encode()
    assert guard.feed(kept) == kept
    hostile = [b"a\x1b]52;c;QUFB\x07b", b"c\x1b]0;title\x1b\\d", "e\u009d8;;http://x\u009cf".encode(),
               b"g\x1bP+q\x1b\\h", b"i\x1b_apc\x07j"]  # fmt: skip
    assert [guard.feed(h) for h in hostile] == [b"ab", b"cd", b"ef", b"gh", b"ij"]
    pieces = [b"k\x1b", b"]52;c;", b"QUFB\x1b", b"\\l\xc2", b"\x9d2;t\x07m"]
    assert b"".join(guard.feed(p) for p in pieces) == b"klm"
    short = StringSequenceGuard(limit=8)
    shown = short.feed(b"\x1b]" + b"x" * 20 + b" the rest\n")
    assert shown.endswith(b" the rest\n") and shown.count(b"x") == 11  # never closed: given up
