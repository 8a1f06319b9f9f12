"""What a person's terminal is shown of text that came from users, jobs, boxes and providers:
run names, log lines, paths, a box's error sentences, a pod's name. Control characters (C0 but
tab, DEL, C1) and the bidi controls are shown as escapes (``\\x1b``, ``\\u202e``), so no such text
can move the cursor, retitle the window, write the clipboard (OSC 52) or reorder what is read.
In rich output such text is never markup: ``[bold]`` and ``[link=...]`` stay literal, and a
stray ``[/INST]`` in a log line cannot raise."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_ESCAPES: dict[int, str] = {
    c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c != ord("\t")
}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in _BIDI})


def printable(text: object) -> str:
    """``text`` with every character a terminal would act on shown as its escape."""
    return str(text).translate(_ESCAPES)


def plain(text: object) -> Text:
    """``text`` as a rich Text: printable, and never read as markup (a table cell, a line)."""
    from rich.text import Text

    return Text(printable(text))


def plain_cells(*values: object) -> list[Text]:
    """A table row's cells: each value :func:`plain`, a rich Text (already styled) as it is."""
    from rich.text import Text

    return [v if isinstance(v, Text) else plain(v) for v in values]


def markup(text: object) -> str:
    """``text`` printable and escaped, to put inside a rich markup string."""
    from rich.markup import escape

    return escape(printable(text))


def say(console: Console, text: object, *, style: str | None = None) -> None:
    """Print ``text`` on a rich ``console`` as it is: printable, never markup."""
    console.print(printable(text), markup=False, style=style)
