"""The anchor prefilter finds exactly what one pass per keyword finds, on big pieces too."""

from __future__ import annotations

from gotcha_helpers import BENIGN, all_example_files, read_text, reference_explain

from outlive.gotchas import explain_text
from outlive.gotchas.match import Explainer
from outlive.gotchas.prefilter import find_keywords, find_keywords_directly, plan_anchors

KEYWORDS = Explainer()._keywords


def test_every_keyword_has_an_anchor_that_it_contains_and_fewer_passes_are_needed() -> None:
    plan = plan_anchors(KEYWORDS)
    covered = sorted(index for members in plan.members for index, _ in members)
    assert covered == list(range(len(KEYWORDS)))
    for anchor, members in zip(plan.anchors, plan.members, strict=True):
        for index, offset in members:
            assert KEYWORDS[index][offset : offset + len(anchor)] == anchor
    assert len(plan.anchors) * 2 <= len(KEYWORDS)


def _corpus() -> str:
    files = [*all_example_files(), *sorted(BENIGN.iterdir())]
    return "\n".join(read_text(p) for p in files)


def test_anchor_hits_equal_direct_hits_on_every_fixture_at_once() -> None:
    text = _corpus()
    plan = plan_anchors(KEYWORDS)
    assert sorted(find_keywords(text, KEYWORDS, plan)) == sorted(
        find_keywords_directly(text, KEYWORDS)
    )


def test_a_common_anchor_falls_back_to_direct_search_without_losing_hits() -> None:
    plan = plan_anchors(KEYWORDS)
    anchor = plan.anchors[0]
    noise = (anchor + " filler\n") * 5000  # far more hits than the per-KiB budget
    text = noise + _corpus() + noise
    assert sorted(find_keywords(text, KEYWORDS, plan)) == sorted(
        find_keywords_directly(text, KEYWORDS)
    )


def test_a_big_piece_is_explained_like_the_brute_force_reference() -> None:
    text = _corpus()
    assert len(text) > 1 << 16  # big enough for the engine to use anchors
    fast = {m.id: m.line for m in explain_text(text)}
    assert fast == reference_explain(text)
