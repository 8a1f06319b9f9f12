"""The shape of a catalog entry: a gotcha, its log signatures, and how outlive handles it.

Everything here is frozen and built once at import. A pattern's regex is compiled the first time
the engine needs it (most never are on a given log, which keeps ``explain``'s start-up short); the
test suite compiles every one, so a bad pattern fails there, not in a user's ``outlive explain``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

__all__ = [
    "ANY",
    "COLAB",
    "GENERIC_SSH",
    "KAGGLE",
    "KUBERNETES",
    "PAPERSPACE",
    "PLATFORMS",
    "RUNPOD",
    "SLURM",
    "Gotcha",
    "Handling",
    "Pattern",
    "Source",
    "cmd",
    "derive_keyword",
    "dmesg",
    "log",
    "required_literals",
]

ANY = "any"
GENERIC_SSH = "generic-ssh"
RUNPOD = "runpod"
PAPERSPACE = "paperspace"
SLURM = "slurm"
KUBERNETES = "kubernetes"
COLAB = "colab"
KAGGLE = "kaggle"
PLATFORMS = (ANY, GENERIC_SSH, RUNPOD, PAPERSPACE, SLURM, KUBERNETES, COLAB, KAGGLE)

_MIN_KEYWORD = 3


class Handling(Enum):
    """What outlive does about a gotcha today; ``prevents``/``detects`` need a proof test."""

    PREVENTS = "prevents"
    DETECTS = "detects"
    DOCUMENTS = "documents"


class Source(Enum):
    """Where a symptom pattern is expected to show up."""

    LOG = "log"  # the job's own stdout/stderr
    DMESG = "dmesg"  # kernel ring buffer
    COMMAND = "command"  # output of a command run by hand or by outlive (df, nvidia-smi, kubectl)


_ESCAPED_LITERALS = set(".^$*+?{}[]()|\\/-'\"`:;,!@#%&=<>~ _")
_QUANTIFIERS = set("?*+{")


def required_literals(regex: str) -> list[str]:
    """The literal runs that every match of ``regex`` must contain, in order.

    Only top-level literals count (group contents and character classes break a run), a
    quantified character is dropped from its run, and a top-level ``|`` makes the answer
    unknowable, so that raises.
    """
    runs: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0

    def close() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex):
            nxt = regex[i + 1]
            if depth == 0 and nxt in _ESCAPED_LITERALS:
                current.append(nxt)
            else:
                close()
            i += 2
        elif c == "[":
            close()
            j = i + 1
            if j < len(regex) and regex[j] == "^":
                j += 1
            if j < len(regex) and regex[j] == "]":
                j += 1
            while j < len(regex) and regex[j] != "]":
                j += 2 if regex[j] == "\\" else 1
            i = j + 1
        elif c == "(":
            close()
            depth += 1
            i += 1
        elif c == ")":
            depth -= 1
            i += 1
        elif c == "|":
            if depth == 0:
                raise ValueError(f"top-level alternation in {regex!r}: split it into two patterns")
            i += 1
        elif c in _QUANTIFIERS:
            if depth == 0 and current:
                current.pop()
            close()
            if c == "{":
                i = regex.index("}", i)
            i += 1
        elif c in ".^$":
            close()
            i += 1
        else:
            if depth == 0:
                current.append(c)
            i += 1
    close()
    return runs


def derive_keyword(regex: str) -> str:
    """The longest literal every match of ``regex`` contains ("" if there is none)."""
    return max(required_literals(regex), key=len, default="")


def _keyword_is_required(keyword: str, regex: str) -> bool:
    # A carriage return inside a message reaches the regex spelled as \r (see match.py) but
    # sits raw in the text the keyword is looked for in, so each side of it counts on its own.
    pieces = (piece for run in required_literals(regex) for piece in run.split("\\r"))
    return any(keyword in piece for piece in pieces)


@dataclass(frozen=True)
class Pattern:
    """One symptom signature: a regex searched in a single normalised log line.

    ``keyword`` is a literal every match contains (derived from the regex unless given); the
    engine only runs the regex on lines where the keyword occurs, which keeps a 100 MB log fast.
    """

    regex_source: str
    kind: Source = Source.LOG
    specificity: int | None = None
    keyword: str = ""

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled regex (compiled on first use)."""
        return re.compile(self.regex_source)

    def __post_init__(self) -> None:
        if not self.keyword:
            object.__setattr__(self, "keyword", derive_keyword(self.regex_source))
        elif not _keyword_is_required(self.keyword, self.regex_source):
            raise ValueError(
                f"keyword {self.keyword!r} is not a literal that every match of "
                f"{self.regex_source!r} contains"
            )
        if len(self.keyword) < _MIN_KEYWORD:
            raise ValueError(
                f"pattern {self.regex_source!r} has no literal of {_MIN_KEYWORD}+ characters "
                "to prefilter on; give keyword= explicitly"
            )
        if self.specificity is not None and not 1 <= self.specificity <= 9:
            raise ValueError(f"specificity must be 1..9, got {self.specificity}")


def log(regex: str, specificity: int | None = None, keyword: str = "") -> Pattern:
    """A pattern expected in the job's own log."""
    return Pattern(regex, Source.LOG, specificity, keyword)


def dmesg(regex: str, specificity: int | None = None, keyword: str = "") -> Pattern:
    """A pattern expected in the kernel ring buffer."""
    return Pattern(regex, Source.DMESG, specificity, keyword)


def cmd(regex: str, specificity: int | None = None, keyword: str = "") -> Pattern:
    """A pattern expected in the output of a diagnostic command."""
    return Pattern(regex, Source.COMMAND, specificity, keyword)


@dataclass(frozen=True)
class Gotcha:
    """One catalog entry. Texts are short and in our own words; facts come from the seeds.

    ``specificity`` (1 generic .. 9 an exact library signature) orders ``explain`` output; a
    pattern may override it. ``proofs`` are pytest node ids that demonstrate a ``prevents`` or
    ``detects`` claim; ``planned`` names the feature expected to take the entry further;
    ``sources`` are public pages whose logs show the failure (kept as test fixtures).
    """

    id: str
    title: str
    symptom: str
    cause: str
    fix: str
    platforms: tuple[str, ...]
    handling: Handling
    handled_by: str
    specificity: int = 5
    patterns: tuple[Pattern, ...] = ()
    proofs: tuple[str, ...] = ()
    planned: str | None = None
    related: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("id", "title", "symptom", "cause", "fix", "handled_by"):
            if not getattr(self, name).strip():
                raise ValueError(f"gotcha {self.id or '?'}: {name} is empty")
        unknown = set(self.platforms) - set(PLATFORMS)
        if not self.platforms or unknown:
            raise ValueError(f"gotcha {self.id}: bad platforms {self.platforms!r}")
        if not 1 <= self.specificity <= 9:
            raise ValueError(f"gotcha {self.id}: specificity must be 1..9")
        if self.handling is not Handling.DOCUMENTS and not self.proofs:
            raise ValueError(f"gotcha {self.id}: {self.handling.value} needs a proof test")

    def applies_to(self, platform: str | None) -> bool:
        """True when the entry is relevant on ``platform``: a platform or a profile name such as
        ``paperspace-core`` (its family is the part before the first ``-``); None means any."""
        if platform is None or ANY in self.platforms or platform in self.platforms:
            return True
        return any(platform.startswith(p + "-") for p in self.platforms)

    def pattern_specificity(self, pattern: Pattern) -> int:
        """The ordering weight of a match through ``pattern``."""
        return self.specificity if pattern.specificity is None else pattern.specificity
