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
from judge.store.schema import APPROXIMATE_SEGMENT, FAITHFUL_SEGMENT, split_segment

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
    """SQL over `comparisons` rows for a stats segment (`*`, `label=value`, a `translation=`
    segment or a label crossed with one), bound. The `translation=` part is no label of the
    call's: it is whether the candidate's request was translated approximately."""
    translation, rest = split_segment(segment)
    sql = {
        None: "",
        FAITHFUL_SEGMENT: " AND empty(candidate_approximations)",
        APPROXIMATE_SEGMENT: " AND notEmpty(candidate_approximations)",
    }[translation]
    if rest == "*":
        return sql, {}
    key, _, value = rest.partition("=")
    return sql + " AND segment[{seg_key:String}] = {seg_value:String}", {
        "seg_key": key,
        "seg_value": value,
    }


def labelled_pairs(
    reader: Reader,
    window: Window,
    *,
    migration: str | None = None,
    segment: str = "*",
) -> dict[tuple[str, str, str], list[Labelled]]:
    """Per (migration, arm, judge version): each labelled pair's current label (the latest)
    and the judge's verdict on it, for pairs captured in the window. One query for all."""
    seg, seg_params = segment_filter(segment)
    mine = " AND migration = {migration:String}" if migration is not None else ""
    key = "migration, arm, judge_version, call_id"
    sql = f"""SELECT r.migration AS migration, r.arm AS arm, r.judge_version AS judge_version,
    r.label AS label, r.queue AS queue, c.verdict AS verdict
FROM
    (SELECT {key}, toString(argMax(label, created_at)) AS label,
        argMax(queue, created_at) AS queue
     FROM reviews WHERE 1{mine} GROUP BY {key}) AS r
INNER JOIN
    (SELECT {key}, toString(any(verdict)) AS verdict FROM comparisons
     WHERE captured_at >= fromUnixTimestamp64Micro({{since_us:Int64}}, 'UTC')
        AND captured_at < fromUnixTimestamp64Micro({{until_us:Int64}}, 'UTC'){mine}{seg}
        AND call_id IN (SELECT call_id FROM reviews WHERE 1{mine})
     GROUP BY {key}) AS c
USING ({key})"""
    params: dict[str, Any] = {**seg_params, **span(window)}
    if migration is not None:
        params["migration"] = migration
    found: dict[tuple[str, str, str], list[Labelled]] = {}
    for r in reader.select(sql, params):
        found.setdefault((r["migration"], r["arm"], r["judge_version"]), []).append(
            Labelled(r["label"], r["queue"], r["verdict"])
        )
    return found


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
