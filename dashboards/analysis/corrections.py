"""Reviewers' labels against the judge: agreement (Cohen's κ) and judge-corrected rates.

Only labels from the calibration queue correct a rate: that queue offers judged pairs in the
order of a hash of their key, so the labelled pairs are a uniform random sample whatever the
judge said, which prediction-powered inference needs (`intervals.ppi_proportion`). Labels from
the disagreement queue were picked *because* of the judge's verdict; they count towards the
agreement figure (shown with how many came from the random sample) but never towards a
corrected rate.

Label classes: a reviewer's `acceptable` (the answers differ, and that is fine) counts as
equivalent; `skip`, `refusal_wrong` and `format_ok` say nothing about the verdict and are left
out, as are pairs the judge did not judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.analysis.figures import VERDICTS, AgreementFigure, Correction
from dashboards.analysis.intervals import agreement, judge_only, ppi_proportion
from dashboards.analysis.queries import Reader, span
from dashboards.analysis.window import Window

CALIBRATION = "calibration"
DISAGREEMENTS = "disagreements"
#: A reviewer's label as a verdict class; labels not listed say nothing about the verdict.
LABEL_CLASS = {
    "equivalent": "equivalent",
    "acceptable": "equivalent",
    "candidate_better": "candidate_better",
    "candidate_worse": "candidate_worse",
    "different": "different",
}


@dataclass(frozen=True, slots=True)
class Labelled:
    label: str
    queue: str
    verdict: str


def segment_filter(segment: str) -> tuple[str, dict[str, str]]:
    """SQL over `comparisons` rows for a segment (`*` or `label=value`), bound."""
    if segment == "*":
        return "", {}
    key, _, value = segment.partition("=")
    return " AND segment[{seg_key:String}] = {seg_value:String}", {
        "seg_key": key,
        "seg_value": value,
    }


def labelled_pairs(
    reader: Reader,
    window: Window,
    *,
    migration: str,
    arm: str,
    judge_version: str,
    segment: str = "*",
) -> list[Labelled]:
    """Each labelled pair's current label (the latest) and the judge's verdict on it."""
    seg, seg_params = segment_filter(segment)
    mine = (
        "migration = {migration:String} AND arm = {arm:String}"
        " AND judge_version = {judge_version:String}"
    )
    sql = f"""SELECT r.label AS label, r.queue AS queue, c.verdict AS verdict FROM
    (SELECT call_id, toString(argMax(label, created_at)) AS label,
        argMax(queue, created_at) AS queue
     FROM reviews WHERE {mine} GROUP BY call_id) AS r
INNER JOIN
    (SELECT call_id, toString(any(verdict)) AS verdict FROM comparisons
     WHERE {mine}{seg}
        AND captured_at >= fromUnixTimestamp64Micro({{since_us:Int64}}, 'UTC')
        AND captured_at < fromUnixTimestamp64Micro({{until_us:Int64}}, 'UTC')
        AND call_id IN (SELECT call_id FROM reviews WHERE {mine})
     GROUP BY call_id) AS c
USING (call_id)"""
    params: dict[str, Any] = {
        "migration": migration,
        "arm": arm,
        "judge_version": judge_version,
        **seg_params,
        **span(window),
    }
    return [Labelled(r["label"], r["queue"], r["verdict"]) for r in reader.select(sql, params)]


def judge_agreement(labelled: list[Labelled]) -> AgreementFigure | None:
    usable = [x for x in labelled if x.label in LABEL_CLASS and x.verdict in VERDICTS]
    if not usable:
        return None
    found = agreement([LABEL_CLASS[x.label] for x in usable], [x.verdict for x in usable])
    return AgreementFigure(
        n=found.n,
        agree=found.agree,
        kappa=found.kappa,
        calibration_labels=sum(x.queue == CALIBRATION for x in usable),
    )


def corrections(
    labelled: list[Labelled], verdicts: dict[str, int], judged: int
) -> list[Correction]:
    """Equivalence and worse rates: the judge's alone, and corrected by PPI++ with the
    calibration labels."""
    sample = [
        x
        for x in labelled
        if x.queue == CALIBRATION and x.label in LABEL_CLASS and x.verdict in VERDICTS
    ]
    found = []
    for metric, verdict in (("equivalence", "equivalent"), ("worse", "candidate_worse")):
        found.append(
            Correction(
                metric=metric,
                raw=judge_only(verdicts[verdict], judged),
                corrected=ppi_proportion(
                    truth=[LABEL_CLASS[x.label] == verdict for x in sample],
                    judge_on_labelled=[x.verdict == verdict for x in sample],
                    judge_positive=verdicts[verdict],
                    judge_n=judged,
                )
                if sample
                else None,
                labels=len(sample),
            )
        )
    return found
