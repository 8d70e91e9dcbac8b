"""The migration verdict: ``safe``, ``investigate`` or ``re-embed and retune``, with reasons.

There is no fixed "80% overlap is safe" line: how much two models' neighbour lists agree
depends on the corpus and on k, so the measured overlap@10 is placed between two reference
points measured the same way (defaults from 1,000 queries × 5,000 texts on the project's
machine, configurable): two versions of one model (multilingual-e5-small and its fine-tune)
agree on 0.895 of the top 10, two model families (MiniLM or wordllama vs e5-small) on
0.30–0.35. The rules, on the 95% interval of the mean overlap@10:

- its upper end reaches the same-family band (``same_family - same_family_margin``): the new
  model retrieves what the old one did, as a new version of the same model does;
- its upper end stays at or below ``cross_family_high + cross_family_margin``: the new model
  retrieves as differently as another model family, so the old index and every threshold
  must be redone;
- anything between: it differs more than a version bump and less than a change of family.

The LLM judge's split of "which list serves this query better" over the least-agreeing
queries (when given) moves the verdict only towards caution: a same-family result whose new
lists the judge finds worse more often than better (by more than ``judge_margin`` of the judged
queries) becomes ``investigate``; a cross-family result stays ``re-embed and retune`` and the
reason says whether the re-embedding is an improvement. The card says why, in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .agreement import Estimate


class Verdict(StrEnum):
    SAFE = "safe"
    INVESTIGATE = "investigate"
    REEMBED = "re-embed and retune"


@dataclass(frozen=True, slots=True)
class ReferencePoints:
    """Overlap@10 of known migrations, measured on the same kind of sample (1,000 queries ×
    5,000 texts by default)."""

    same_family: float = 0.895
    cross_family_low: float = 0.30
    cross_family_high: float = 0.35
    same_family_margin: float = 0.05
    cross_family_margin: float = 0.05
    judge_margin: float = 0.10

    def __post_init__(self) -> None:
        if not 0 <= self.cross_family_low <= self.cross_family_high < self.same_family <= 1:
            raise ValueError(
                "reference points need 0 <= cross_family_low <= cross_family_high "
                "< same_family <= 1"
            )
        if self.cross_family_high + self.cross_family_margin >= (
            self.same_family - self.same_family_margin
        ):
            raise ValueError("the cross-family and same-family bands overlap")


@dataclass(frozen=True, slots=True)
class JudgeSplit:
    """How the LLM judge compared the two neighbour lists on the queries it was shown."""

    better: int
    worse: int
    same: int

    @property
    def judged(self) -> int:
        return self.better + self.worse + self.same


@dataclass(frozen=True, slots=True)
class VerdictCard:
    verdict: Verdict
    overlap: Estimate
    reasons: tuple[str, ...]
    references: ReferencePoints
    judge: JudgeSplit | None = None

    @property
    def summary(self) -> str:
        return f"{self.verdict.value}: " + " ".join(self.reasons)


def _interval(value: Estimate) -> str:
    return f"{value.mean:.3f} (95% CI {value.low:.3f}–{value.high:.3f}, {value.n} queries)"


def verdict_card(
    overlap: Estimate,
    *,
    references: ReferencePoints | None = None,
    judge: JudgeSplit | None = None,
    k: int = 10,
) -> VerdictCard:
    """The verdict for a migration whose mean overlap@k is ``overlap``."""
    ref = references or ReferencePoints()
    same_band = ref.same_family - ref.same_family_margin
    cross_band = ref.cross_family_high + ref.cross_family_margin
    measured = f"The new model returns {overlap.mean:.0%} of the old model's top {k} neighbours"
    reasons = [f"Overlap@{k} is {_interval(overlap)}."]
    if overlap.high >= same_band:
        verdict = Verdict.SAFE
        reasons.append(
            f"{measured}, as much as two versions of one model do (reference "
            f"{ref.same_family:.3f}): the old index and thresholds stay meaningful."
        )
    elif overlap.high <= cross_band:
        verdict = Verdict.REEMBED
        reasons.append(
            f"{measured}, no more than two different model families do (reference "
            f"{ref.cross_family_low:.2f}–{ref.cross_family_high:.2f}): the vectors live in "
            "another space; re-embed the corpus and recalibrate every similarity threshold."
        )
    else:
        verdict = Verdict.INVESTIGATE
        reasons.append(
            f"{measured}: less than a new version of one model ({ref.same_family:.3f}) and "
            f"more than another family ({ref.cross_family_high:.2f}); read the least-agreeing "
            "queries and the threshold mapping before switching."
        )
    if judge is not None and judge.judged:
        lean = (judge.better - judge.worse) / judge.judged
        split = (
            f"The judge found the new lists better for {judge.better}, worse for "
            f"{judge.worse} and equivalent for {judge.same} of {judge.judged} queries."
        )
        if lean < -ref.judge_margin:
            reasons.append(split + " Where the lists differ, the new model serves worse.")
            if verdict is Verdict.SAFE:
                verdict = Verdict.INVESTIGATE
        elif lean > ref.judge_margin:
            reasons.append(split + " Where the lists differ, the new model serves better.")
        else:
            reasons.append(split + " Where the lists differ, neither serves clearly better.")
    return VerdictCard(
        verdict=verdict, overlap=overlap, reasons=tuple(reasons), references=ref, judge=judge
    )
