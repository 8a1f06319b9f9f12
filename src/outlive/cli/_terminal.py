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


class StringSequenceGuard:
    """A job's log bytes as a terminal may show them: colours, cursor moves, ``\\r`` progress bars
    pass untouched, but the string sequences a terminal acts on beyond the screen are dropped:
    OSC (window title, clipboard via OSC 52, hyperlinks), DCS, SOS, PM and APC, in their 7-bit
    (``ESC ]``) and UTF-8 C1 (``U+009D``) forms. Stateful: a sequence may span chunks; one left
    open is given up after ``limit`` bytes, as terminals do, so the log after it still shows."""

    _OPENERS = frozenset(b"]PX^_")  # after ESC: OSC, DCS, SOS, PM, APC
    _C1_OPENERS = frozenset((0x90, 0x98, 0x9D, 0x9E, 0x9F))  # the same, as C1 (after 0xC2)

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._held = b""  # an ESC or 0xC2 at a chunk's end, until the next byte says what it is
        self._dropped: int | None = None  # bytes of an open sequence dropped so far

    def feed(self, chunk: bytes) -> bytes:
        data, self._held = self._held + chunk, b""
        out = bytearray()
        i = 0
        while i < len(data):
            if self._dropped is not None:
                i = self._skip(data, i)
                continue
            byte = data[i]
            if byte in (0x1B, 0xC2):
                if i + 1 == len(data):
                    self._held = data[i:]
                    break
                opener = self._OPENERS if byte == 0x1B else self._C1_OPENERS
                if data[i + 1] in opener:
                    self._dropped, i = 0, i + 2
                    continue
            out.append(byte)
            i += 1
        return bytes(out)

    def _skip(self, data: bytes, i: int) -> int:
        """Past the open sequence's terminator (BEL, ESC \\ or C1 ST) within ``data``."""
        assert self._dropped is not None
        while i < len(data):
            byte = data[i]
            if byte == 0x07:
                self._dropped = None
                return i + 1
            if byte in (0x1B, 0xC2):
                if i + 1 == len(data):
                    self._held = data[i:]
                    return len(data)
                if data[i + 1] == (0x5C if byte == 0x1B else 0x9C):
                    self._dropped = None
                    return i + 2
            self._dropped += 1
            if self._dropped > self.limit:
                self._dropped = None  # never closed: show the rest of the log
                return i + 1
            i += 1
        return i
