"""The verdict card: relative to the reference points, the judge only adds caution."""

from __future__ import annotations

import pytest

from judge.embeddings import Estimate, JudgeSplit, ReferencePoints, Verdict, verdict_card


def around(mean: float, half: float = 0.02) -> Estimate:
    return Estimate(mean=mean, low=mean - half, high=mean + half, n=1000)


def test_verdicts_follow_the_reference_points() -> None:
    assert verdict_card(around(0.90)).verdict is Verdict.SAFE
    assert verdict_card(around(0.33)).verdict is Verdict.REEMBED
    assert verdict_card(around(0.60)).verdict is Verdict.INVESTIGATE
    card = verdict_card(around(0.33))
    assert "0.30–0.35" in card.summary and "re-embed the corpus" in card.summary


def test_no_fixed_cut_off() -> None:
    # the same 0.70 is safe when versions of one model agree on 0.72 on this kind of corpus
    here = ReferencePoints(same_family=0.72, cross_family_low=0.10, cross_family_high=0.15)
    assert verdict_card(around(0.70), references=here).verdict is Verdict.SAFE
    assert verdict_card(around(0.70)).verdict is Verdict.INVESTIGATE
    # a wide interval reaching the same-family band counts as not shown unsafe
    assert verdict_card(Estimate(0.80, 0.72, 0.86, 40)).verdict is Verdict.SAFE


def test_the_judge_moves_towards_caution_only() -> None:
    worse = JudgeSplit(better=5, worse=30, same=15)
    better = JudgeSplit(better=30, worse=5, same=15)
    assert verdict_card(around(0.90), judge=worse).verdict is Verdict.INVESTIGATE
    assert verdict_card(around(0.90), judge=better).verdict is Verdict.SAFE
    card = verdict_card(around(0.33), judge=better)
    assert card.verdict is Verdict.REEMBED and "serves better" in card.summary
    assert "30, worse for 5" in card.summary


def test_refuses_overlapping_bands() -> None:
    with pytest.raises(ValueError):
        ReferencePoints(same_family=0.5, cross_family_high=0.6)
    with pytest.raises(ValueError, match="overlap"):
        ReferencePoints(same_family=0.45, cross_family_high=0.38)
