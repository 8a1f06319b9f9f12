"""Match log text against the gotcha catalog: the engine behind ``outlive explain``.

The log is read in blocks of about 1 MiB, never whole. Each block loses its ANSI escapes, then
every pattern's literal keyword is looked for with ``str.find`` (a C-speed scan); only the few
segments that contain a keyword see a regex, on at most ``MAX_SEGMENT_CHARS`` characters, so a
100 MB log costs seconds and no pattern can backtrack over a huge line.

A segment is the text between two line breaks, where a carriage return also counts as a break so
each redraw of a ``\\r`` progress bar stands alone. A short physical line with a stray carriage
return inside (bash echoing a CRLF script: ``set: pipefail\\r: invalid option``) is also offered
whole, with each carriage return spelled as the two characters ``\\r``. Line numbers are 1-based
and count ``\\n`` only.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from outlive.gotchas.catalog import CATALOG
from outlive.gotchas.model import Gotcha, Pattern, Source

__all__ = [
    "MAX_SEGMENT_CHARS",
    "Explainer",
    "Match",
    "explain_file",
    "explain_lines",
    "explain_stream",
    "explain_text",
    "feed_stream",
]

MAX_SEGMENT_CHARS = 4096  # a regex never sees more than this, whatever the line length
MAX_TEXT_CHARS = 400  # how much of a matched line a Match carries
_JOINED_MAX_CHARS = 1024  # physical lines up to this long are also offered with \r spelled out
_JOINED_MAX_CRS = 4  # ... if they have this few interior carriage returns (not a progress bar)
_BLOCK_CHARS = 1 << 18  # small enough that the keyword scans stay in cache
_MAX_PENDING_CHARS = 4 << 20  # a line longer than this is scanned in pieces
PARALLEL_MIN_BYTES = 32 << 20  # a log file this big is scanned in parts on several cores

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


@dataclass(frozen=True)
class Match:
    """One gotcha found in a log: its first line (1-based), that line's text, and the fix."""

    id: str
    line: int
    text: str
    title: str
    fix: str
    count: int = 1
    specificity: int = 5

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of ``outlive explain --json`` (one element of ``matches``)."""
        return {
            "id": self.id,
            "line": self.line,
            "text": self.text,
            "title": self.title,
            "fix": self.fix,
            "count": self.count,
        }


@dataclass
class _Found:
    gotcha: Gotcha
    line: int
    text: str
    specificity: int
    count: int = 1
    last_line: int = 0


_Rule = tuple[Gotcha, Pattern, int]
# (id, first line, its text, specificity, count of lines, last line): one gotcha found, as data
FoundRow = tuple[str, int, str, int, int, int]


class Explainer:
    """Incremental matcher: ``feed`` text in order, then read ``matches()``.

    ``platform`` keeps only entries relevant there (None: all); ``kinds`` keeps only patterns of
    those sources (None: all). Memory stays bounded by the size of what one ``feed`` is given.
    """

    def __init__(
        self,
        platform: str | None = None,
        kinds: Collection[Source] | None = None,
        catalog: Iterable[Gotcha] = CATALOG,
    ) -> None:
        by_keyword: dict[str, list[_Rule]] = {}
        self._order: dict[str, int] = {}
        for gotcha in catalog:
            self._order[gotcha.id] = len(self._order)
            if not gotcha.applies_to(platform):
                continue
            for pattern in gotcha.patterns:
                if kinds is None or pattern.kind in kinds:
                    rule = (gotcha, pattern, gotcha.pattern_specificity(pattern))
                    by_keyword.setdefault(pattern.keyword, []).append(rule)
        self._keywords = tuple(by_keyword)
        self._rules = tuple(tuple(by_keyword[k]) for k in self._keywords)
        self._found: dict[str, _Found] = {}
        self._line = 1  # number of the line the next fed text starts on

    def feed(self, text: str) -> None:
        """Scan the next piece of the log, which should end at a line break.

        A piece that ends mid-line is scanned as if the line ended there; the next piece then
        continues that line's number.
        """
        if not text:
            return
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        candidates: dict[int, tuple[int, set[int]]] = {}
        skip_until: dict[int, int] = {}  # a keyword's later hits inside its segment add nothing
        for pos, index in self._hits(text):
            if pos < skip_until.get(index, 0):
                continue
            start, end = _segment(text, pos, len(self._keywords[index]))
            seen = candidates.get(start)
            if seen is None:
                candidates[start] = (end, {index})
            else:
                seen[1].add(index)
            skip_until[index] = max(end, pos + 1)
        line = self._line
        cursor = 0
        for start in sorted(candidates):
            end, indexes = candidates[start]
            line += text.count("\n", cursor, start)
            cursor = start
            views = _views(text, start, end)
            for index in sorted(indexes):
                for gotcha, pattern, specificity in self._rules[index]:
                    for view in views:
                        found = pattern.regex.search(view)
                        if found is not None:
                            self._record(gotcha, line, view, found, specificity)
                            break
        self._line = line + text.count("\n", cursor)

    def _hits(self, text: str) -> Iterator[tuple[int, int]]:
        """(position, keyword index) of every keyword in ``text``, each keyword's in order.

        One ``str.find`` pass per keyword: its cost falls with the needle's length, so the
        longest literal of each pattern is its keyword (shared 4-character anchors, tried,
        made fewer but three times slower passes).
        """
        for index, keyword in enumerate(self._keywords):
            pos = text.find(keyword)
            while pos != -1:
                yield pos, index
                pos = text.find(keyword, pos + 1)

    def _record(
        self, gotcha: Gotcha, line: int, view: str, found: re.Match[str], specificity: int
    ) -> None:
        seen = self._found.get(gotcha.id)
        if seen is None:
            self._found[gotcha.id] = _Found(
                gotcha, line, _excerpt(view, found), specificity, last_line=line
            )
            return
        seen.specificity = max(seen.specificity, specificity)
        if line != seen.last_line:
            seen.count += 1
            seen.last_line = line

    def export(self) -> tuple[int, list[FoundRow]]:
        """What was found, as plain rows, and how many lines were fed (for ``absorb``)."""
        rows = [
            (f.gotcha.id, f.line, f.text, f.specificity, f.count, f.last_line)
            for f in self._found.values()
        ]
        return self._line - 1, rows

    def absorb(self, rows: Iterable[FoundRow], lines: int) -> None:
        """Take what another explainer found in ``lines`` lines of text that follow what this
        one has been fed, as if this one had been fed them: first lines stay, counts add."""
        by_id = {rule[0].id: rule[0] for rules in self._rules for rule in rules}
        offset = self._line - 1
        for gid, line, text, specificity, count, last_line in rows:
            seen = self._found.get(gid)
            if seen is None:
                self._found[gid] = _Found(
                    by_id[gid], line + offset, text, specificity, count, last_line + offset
                )
            else:
                seen.specificity = max(seen.specificity, specificity)
                seen.count += count
                seen.last_line = last_line + offset
        self._line += lines

    def matches(self) -> list[Match]:
        """Each matched gotcha once: most specific first, then by first line, then catalog order."""
        ordered = sorted(
            self._found.values(),
            key=lambda f: (-f.specificity, f.line, self._order[f.gotcha.id]),
        )
        return [
            Match(
                id=f.gotcha.id,
                line=f.line,
                text=f.text,
                title=f.gotcha.title,
                fix=f.gotcha.fix,
                count=f.count,
                specificity=f.specificity,
            )
            for f in ordered
        ]


def _segment(text: str, pos: int, width: int) -> tuple[int, int]:
    """Bounds of the segment around a keyword hit at ``pos``, at most MAX_SEGMENT_CHARS long."""
    low = max(0, pos - MAX_SEGMENT_CHARS)
    start = max(text.rfind("\n", low, pos), text.rfind("\r", low, pos)) + 1
    if start == 0:
        start = low
    high = min(len(text), pos + width + MAX_SEGMENT_CHARS)
    ends = [e for e in (text.find("\n", pos, high), text.find("\r", pos, high)) if e != -1]
    end = min(ends) if ends else high
    if end - start > MAX_SEGMENT_CHARS:
        start = max(start, pos + width // 2 - MAX_SEGMENT_CHARS // 2)
        end = min(end, start + MAX_SEGMENT_CHARS)
    return start, end


def _views(text: str, start: int, end: int) -> list[str]:
    """The segment, plus its whole physical line if that line hides a stray carriage return."""
    views = [text[start:end]]
    low = max(0, start - _JOINED_MAX_CHARS)
    line_start = text.rfind("\n", low, start) + 1
    if line_start == 0 and low > 0:
        return views
    high = min(len(text), end + _JOINED_MAX_CHARS)
    line_end = text.find("\n", end, high)
    if line_end == -1:
        if high < len(text):
            return views
        line_end = len(text)
    physical = text[line_start:line_end]
    if physical.endswith("\r"):
        physical = physical[:-1]  # a CRLF line ending, not part of the message
    if len(physical) <= _JOINED_MAX_CHARS and 0 < physical.count("\r") <= _JOINED_MAX_CRS:
        views.append(physical.replace("\r", "\\r"))
    return views


def _excerpt(view: str, found: re.Match[str]) -> str:
    text = view.strip()
    if len(text) <= MAX_TEXT_CHARS:
        return text
    first = max(0, found.start() - MAX_TEXT_CHARS // 4)
    return view[first : first + MAX_TEXT_CHARS].strip()


def explain_text(
    text: str, platform: str | None = None, kinds: Collection[Source] | None = None
) -> list[Match]:
    """Match a log held in memory."""
    explainer = Explainer(platform, kinds)
    first = 0
    while first < len(text):
        cut = text.rfind("\n", first, first + _BLOCK_CHARS) + 1
        if cut <= first or len(text) - first <= _BLOCK_CHARS:
            cut = first + _BLOCK_CHARS
        explainer.feed(text[first:cut])
        first = cut
    return explainer.matches()


def explain_lines(
    lines: Iterable[str], platform: str | None = None, kinds: Collection[Source] | None = None
) -> list[Match]:
    """Match an iterable of lines (with or without their ``\\n``); line N is the N-th item.

    A line keeps any carriage returns it holds, so open files with ``newline="\\n"`` (or use
    ``explain_file``): universal newlines would split progress-bar redraws into lines.
    """
    explainer = Explainer(platform, kinds)
    parts: list[str] = []
    size = 0
    for item in lines:
        if item.endswith("\n"):
            item = item[:-1]
        if "\n" in item:
            item = item.replace("\n", "\r")  # keep the numbering: one item is one line
        parts.append(item)
        parts.append("\n")
        size += len(item) + 1
        if size >= _BLOCK_CHARS:
            explainer.feed("".join(parts))
            parts.clear()
            size = 0
    explainer.feed("".join(parts))
    return explainer.matches()


def explain_stream(
    stream: BinaryIO,
    platform: str | None = None,
    kinds: Collection[Source] | None = None,
    chunk_bytes: int = _BLOCK_CHARS,
) -> list[Match]:
    """Match a binary stream (a file, a pipe, stdin) read in chunks; invalid UTF-8 is replaced."""
    explainer = Explainer(platform, kinds)
    feed_stream(explainer, stream, chunk_bytes)
    return explainer.matches()


def feed_stream(explainer: Explainer, stream: BinaryIO, chunk_bytes: int = _BLOCK_CHARS) -> None:
    """Feed a binary stream to ``explainer`` in chunks cut at line breaks."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    while True:
        data = stream.read(chunk_bytes)
        pending += decoder.decode(data, final=not data)
        if not data:
            break
        cut = pending.rfind("\n") + 1
        if cut == 0 and len(pending) > _MAX_PENDING_CHARS:
            cut = pending.rfind("\r") + 1 or len(pending)
        if cut:
            explainer.feed(pending[:cut])
            pending = pending[cut:]
    explainer.feed(pending)


def explain_file(
    path: str | os.PathLike[str],
    platform: str | None = None,
    kinds: Collection[Source] | None = None,
) -> list[Match]:
    """Match a log file, streaming it with bounded memory; a big file is split at line breaks
    and its parts scanned on several cores (``outlive.gotchas.parallel``)."""
    if os.path.getsize(path) >= PARALLEL_MIN_BYTES:
        from outlive.gotchas.parallel import explain_file_in_parts

        found = explain_file_in_parts(path, platform, kinds)
        if found is not None:
            return found
    with open(path, "rb") as stream:
        return explain_stream(stream, platform, kinds)
