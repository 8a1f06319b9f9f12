"""Fewer passes over a big log: find short anchors that every keyword contains, then confirm.

Scanning a block once per keyword costs one memory pass per keyword (over a hundred). Here each
keyword is assigned an anchor, a 4-character piece of it that other keywords share where
possible and that healthy logs rarely contain, so one pass per anchor (a third as many) finds
every place a keyword can start; the keywords of that anchor are then checked right there.

An anchor that turns out to be common in a given log (more hits than ``_MAX_HITS_PER_KB`` per
KiB) stops being used for the rest of that block: its keywords are searched directly instead,
so a pathological log costs no more than the plain scan.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["AnchorPlan", "find_keywords", "find_keywords_directly", "plan_anchors"]

_WIDTH = 4
_MAX_HITS_PER_KB = 2
# Healthy log text: an anchor found here would fire on every line of a normal run.
_COMMON = (
    "Epoch 1:  45%|####5     | 352/782 [00:18<00:22, 18.8it/s, loss=0.412, v_num=3] "
    "100%|##########| 782/782 2024-05-01 12:00:00 | INFO | step 100 | loss 0.4123 | lr 3.0e-04 "
    "| grad_norm 0.912 | tok/s 41000 Requirement already satisfied: numpy in "
    "/opt/conda/lib/python3.10/site-packages Downloading model.safetensors Collecting torch "
    "Successfully installed UserWarning: TypedStorage is deprecated warnings.warn( NCCL INFO "
    "Channel 00/02 : 0 1 saving checkpoint to /workspace/ckpt/step=100.ckpt File "
    '"/usr/lib/python3.10/site-packages/torch/nn/modules/module.py", line 1501, in _call_impl '
    "[W socket.cpp:663] [c10d] The client socket has failed to connect to [localhost]:29500 "
    "Validation: the model reached a new best accuracy on the evaluation set"
)


@dataclass(frozen=True)
class AnchorPlan:
    """Each anchor with the keywords it stands for, as (keyword index, offset of the anchor
    inside that keyword)."""

    anchors: tuple[str, ...]
    members: tuple[tuple[tuple[int, int], ...], ...]


def plan_anchors(keywords: Sequence[str]) -> AnchorPlan:
    """Cover every keyword with as few anchors as a greedy set cover finds (a few ms)."""
    holders: dict[str, set[int]] = {}
    for index, keyword in enumerate(keywords):
        for i in range(len(keyword) - _WIDTH + 1):
            piece = keyword[i : i + _WIDTH]
            if piece not in _COMMON:
                holders.setdefault(piece, set()).add(index)
    # lazy greedy: a piece's count only shrinks, so a popped piece that still beats the next
    # one's (possibly stale) count is the best choice
    heap = [(-_score(len(held), piece), piece) for piece, held in holders.items()]
    heapq.heapify(heap)
    left = set(range(len(keywords)))
    groups: dict[str, list[tuple[int, int]]] = {}
    while left and heap:
        _, piece = heapq.heappop(heap)
        covered = holders[piece] & left
        if not covered:
            continue
        score = _score(len(covered), piece)
        if heap and -score > heap[0][0]:
            heapq.heappush(heap, (-score, piece))
            continue
        groups[piece] = [(index, keywords[index].index(piece)) for index in sorted(covered)]
        left -= covered
    for index in sorted(left):  # too short, or made only of common pieces: its own anchor
        groups.setdefault(keywords[index], []).append((index, 0))
    anchors = tuple(groups)
    return AnchorPlan(anchors, tuple(tuple(groups[a]) for a in anchors))


def _score(shared: int, piece: str) -> float:
    """How good an anchor ``piece`` is: the keywords it covers first; among equals, upper case,
    digits and punctuation, rarer in running text than lower-case words."""
    return shared + 0.3 * sum(not (c.islower() or c == " ") for c in piece)


def find_keywords(
    text: str, keywords: Sequence[str], plan: AnchorPlan
) -> Iterator[tuple[int, int]]:
    """Every (position, keyword index) where a keyword occurs in ``text`` (each anchor hit
    reports the keywords that start there; an occurrence is reported once)."""
    max_hits = max(64, len(text) * _MAX_HITS_PER_KB // 1024)
    for anchor, members in zip(plan.anchors, plan.members, strict=True):
        hits = 0
        pos = text.find(anchor)
        while pos != -1:
            hits += 1
            if hits > max_hits:  # a common anchor in this log: search its keywords directly
                for index, offset in members:
                    yield from _occurrences(text, keywords[index], index, max(0, pos - offset))
                break
            for index, offset in members:
                start = pos - offset
                if start >= 0 and text.startswith(keywords[index], start):
                    yield start, index
            pos = text.find(anchor, pos + 1)


def find_keywords_directly(text: str, keywords: Sequence[str]) -> Iterator[tuple[int, int]]:
    """The same as ``find_keywords``, one pass per keyword (cheaper on a small text)."""
    for index, keyword in enumerate(keywords):
        yield from _occurrences(text, keyword, index, 0)


def _occurrences(text: str, keyword: str, index: int, start: int) -> Iterator[tuple[int, int]]:
    pos = text.find(keyword, start)
    while pos != -1:
        yield pos, index
        pos = text.find(keyword, pos + 1)
