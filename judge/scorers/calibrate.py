"""Calibration of the refusal detector against human labels (`shadowjudge calibrate refusal`).

Input is one or more CSV files with a `completion` column (the answer) and a `final_label`
column in XSTest's vocabulary: `1_full_compliance`, `2_full_refusal`, `3_partial_refusal`, and
optionally a `prompt` column, the request, which the detector reads as the judge does. A
full or partial refusal counts as positive. Each file adds a synthetic `source` column (its
stem), so `--by source` reports one line per file, i.e. per model when files are per model.

`--leave-one-out` (with `--by`) answers "is the threshold tuned to these data?": for every
group it fits the threshold on the other groups only and reports the held-out figures, next to
the figures at the detector's fixed `THRESHOLD`.

`--tier-band LO,HI` (repeatable; `default` is `judge.refusal_tier.band`'s default) reports what
the LLM tier for uncertain refusals (`judge.scorers.refusal_tier`) would do: how many answers
have a rules score in the band (count and share: the judge calls it costs), how many of those
the rules got wrong, and precision, recall and F1 when the answers in the band are decided by
`--tier-oracle label`, a fake judge that returns the human label, next to the rules' figures.
That oracle is a perfect judge, so its figures are the most the band can give; a real judge
lands between the two. The band is checked as the configuration checks it, and an answer is in
it exactly when the judge would send it (`in_band`, both ends included).
"""

from __future__ import annotations

import argparse
import csv
import sys
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from judge.config import RefusalTierSettings
from judge.scorers.refusal import DETECTOR_VERSION, THRESHOLD, detect_refusal
from judge.scorers.refusal_tier import in_band

#: XSTest's labels and whether each is a refusal (the positive class).
LABELS: Mapping[str, bool] = {
    "1_full_compliance": False,
    "2_full_refusal": True,
    "3_partial_refusal": True,
}
TEXT_COLUMN = "completion"
#: Optional: the request the answer replies to (XSTest's completion files carry it).
PROMPT_COLUMN = "prompt"
LABEL_COLUMN = "final_label"
SOURCE_COLUMN = "source"
#: Answers can be long; the csv module's default field limit (128 KiB) is too small.
_FIELD_LIMIT = 16 * 1024 * 1024

Row = Mapping[str, str]


class CalibrationError(Exception):
    """The labelled data cannot be used as given; the message names the column or value."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Confusion counts for one group, with the usual ratios (None when undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def support(self) -> int:
        """Number of labelled refusals."""
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.support if self.support else None

    @property
    def f1(self) -> float | None:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def add(self, predicted: bool, actual: bool) -> Counts:
        return Counts(
            tp=self.tp + (predicted and actual),
            fp=self.fp + (predicted and not actual),
            fn=self.fn + (not predicted and actual),
            tn=self.tn + (not predicted and not actual),
        )


@dataclass(frozen=True, slots=True)
class _Scored:
    score: float
    refused: bool
    actual: bool
    group: str | None
    #: The human label (XSTest's vocabulary) and the detector's kind (none/full/partial).
    label: str = ""
    found: str = ""


def load_labels(paths: Iterable[Path]) -> list[dict[str, str]]:
    """Read and concatenate labelled CSV files, adding `source` = the file's stem."""
    # process-wide, but only ever raised: long answers are what this tool reads
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    rows: list[dict[str, str]] = []
    for path in paths:
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames or []
                for column in (TEXT_COLUMN, LABEL_COLUMN):
                    if column not in header:
                        raise CalibrationError(f"{path}: missing column {column!r}")
                for row in reader:
                    rows.append({**row, SOURCE_COLUMN: path.stem})
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CalibrationError(f"{path}: cannot read: {exc}") from exc
    return rows


def _score(rows: Iterable[Row], by: str | None) -> list[_Scored]:
    scored: list[_Scored] = []
    numbers: dict[str, int] = {}  # data rows seen per source, for messages
    for row in rows:
        source = row.get(SOURCE_COLUMN) or "input"
        numbers[source] = number = numbers.get(source, 0) + 1
        where = f"{source}, row {number}"
        for column in (TEXT_COLUMN, LABEL_COLUMN):
            if column not in row:
                raise CalibrationError(f"{where}: missing column {column!r}")
        if by is not None and by not in row:
            raise CalibrationError(f"{where}: missing column {by!r} (given as --by)")
        label = (row[LABEL_COLUMN] or "").strip()
        if label not in LABELS:
            known = ", ".join(LABELS)
            raise CalibrationError(
                f"{where}: unknown {LABEL_COLUMN} {label!r} (expected one of {known})"
            )
        verdict = detect_refusal(row[TEXT_COLUMN] or "", row.get(PROMPT_COLUMN) or None)
        group = (row[by] or "") if by else None
        scored.append(
            _Scored(verdict.score, verdict.refused, LABELS[label], group, label, verdict.kind.value)
        )
    if not scored:
        raise CalibrationError("no labelled rows")
    return scored


def _count(scored: Iterable[_Scored], threshold: float | None = None) -> Counts:
    counts = Counts()
    for item in scored:
        predicted = item.refused if threshold is None else item.score >= threshold
        counts = counts.add(predicted, item.actual)
    return counts


def _groups(scored: Sequence[_Scored]) -> list[str]:
    return sorted({item.group for item in scored if item.group is not None})


def evaluate(rows: Iterable[Row], by: str | None = None) -> dict[str, Counts]:
    """Confusion counts under "all" and, per value v of column `by`, under "{by}={v}"."""
    return _evaluate(_score(rows, by), by)


def _evaluate(scored: Sequence[_Scored], by: str | None) -> dict[str, Counts]:
    counts = {"all": _count(scored)}
    for group in _groups(scored):
        counts[f"{by}={group}"] = _count(item for item in scored if item.group == group)
    return counts


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One group held out: the threshold fitted on the others, and the counts on this one."""

    group: str
    threshold: float
    at_fitted: Counts
    at_fixed: Counts


def leave_one_out(rows: Iterable[Row], by: str) -> list[HeldOut]:
    """For each value of `by`, fit the threshold on the other values and score this one."""
    return _leave_one_out(_score(rows, by), by)


def _leave_one_out(scored: Sequence[_Scored], by: str) -> list[HeldOut]:
    groups = _groups(scored)
    if len(groups) < 2:
        raise CalibrationError(f"--leave-one-out needs at least two values of column {by!r}")
    held_out: list[HeldOut] = []
    for group in groups:
        threshold = fit_threshold([(i.score, i.actual) for i in scored if i.group != group])
        test = [item for item in scored if item.group == group]
        held_out.append(HeldOut(group, threshold, _count(test, threshold), _count(test, THRESHOLD)))
    return held_out


def fit_threshold(scored: Sequence[tuple[float, bool]]) -> float:
    """The score threshold with the best F1 on `scored` (ties: the one nearest `THRESHOLD`)."""
    positives = sorted(score for score, actual in scored if actual)
    negatives = sorted(score for score, actual in scored if not actual)
    chosen, best = THRESHOLD, (-1.0, 0.0)
    for threshold in sorted({*positives, *negatives, THRESHOLD} - {0.0}):
        tp = len(positives) - bisect_left(positives, threshold)
        fp = len(negatives) - bisect_left(negatives, threshold)
        f1 = Counts(tp=tp, fp=fp, fn=len(positives) - tp).f1 or 0.0
        key = (f1, -abs(threshold - THRESHOLD))
        if key > best:
            chosen, best = threshold, key
    return chosen


def refusal_report(rows: Iterable[Row], by: str | None = None) -> str:
    """Precision, recall, F1, support and TP/FP/FN overall and per value of column `by`."""
    return _format_counts(_evaluate(_score(rows, by), by))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _format_counts(counts: Mapping[str, Counts]) -> str:
    width = max(len("group"), *(len(name) for name in counts))
    lines = [
        f"refusal detector {DETECTOR_VERSION} (threshold {THRESHOLD:.2f}); "
        "positive = full or partial refusal",
        f"{'group':<{width}} {'n':>6} {'support':>7} {'TP':>5} {'FP':>5} {'FN':>5} "
        f"{'precision':>9} {'recall':>7} {'F1':>6}",
    ]
    for name, c in counts.items():
        lines.append(
            f"{name:<{width}} {c.n:>6} {c.support:>7} {c.tp:>5} {c.fp:>5} {c.fn:>5} "
            f"{_ratio(c.precision):>9} {_ratio(c.recall):>7} {_ratio(c.f1):>6}"
        )
    return "\n".join(lines) + "\n"


#: The detector's kinds, as the confusion table's columns.
FOUND = ("none", "full", "partial")


def _format_kinds(scored: Sequence[_Scored]) -> str:
    """Recall on full and on partial refusals apart, and the confusion table: each human label
    against what the detector found. Partial refusals (an answer that declines part of the
    request) are the hard kind; a team's own labels show where theirs fail."""
    table = {label: dict.fromkeys(FOUND, 0) for label in LABELS}
    for item in scored:
        table[item.label][item.found or ("full" if item.refused else "none")] += 1
    width = max(len(label) for label in LABELS)
    lines = ["by kind: what the detector found (columns) for each human label (rows)"]
    lines.append(f"{'label':<{width}} " + " ".join(f"{f:>8}" for f in FOUND) + f" {'recall':>7}")
    for label, row in table.items():
        total = sum(row.values())
        hit = total - row["none"] if LABELS[label] else row["none"]
        recall = _ratio(hit / total) if total else "-"
        cells = " ".join(f"{row[f]:>8}" for f in FOUND)
        lines.append(f"{label:<{width}} {cells} {recall:>7}")
    lines.append(
        "recall: for a refusal label, the share found as any refusal; for compliance, the "
        "share left as none (specificity)"
    )
    return "\n".join(lines) + "\n"


def _format_held_out(held_out: Sequence[HeldOut], by: str) -> str:
    names = [f"{by}={item.group}" for item in held_out]
    width = max(len("held out"), *(len(name) for name in names))
    fixed = f"F1 at {THRESHOLD:.2f}"
    lines = [
        f"leave-one-{by}-out: threshold fitted on the other groups, F1 on the held-out one",
        f"{'held out':<{width}} {'fitted':>7} {'F1':>6} {fixed:>10}",
    ]
    for name, item in zip(names, held_out, strict=True):
        lines.append(
            f"{name:<{width}} {item.threshold:>7.3f} {_ratio(item.at_fitted.f1):>6} "
            f"{_ratio(item.at_fixed.f1):>10}"
        )
    return "\n".join(lines) + "\n"


def parse_band(text: str) -> tuple[float, float]:
    """A `--tier-band`: `LO,HI`, or `default`; checked as `judge.refusal_tier.band` is."""
    if text.strip() == "default":
        return RefusalTierSettings().band
    try:
        low, high = (float(part) for part in text.split(","))
        return RefusalTierSettings(band=(low, high)).band
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise CalibrationError(f"--tier-band {text!r}: {reason}") from exc
    except ValueError as exc:
        raise CalibrationError(f"--tier-band {text!r}: expected LO,HI or 'default'") from exc


@dataclass(frozen=True, slots=True)
class TierFigures:
    """One band on one group: answers in it, the rules' errors there, rules and tier counts."""

    n: int
    in_band: int
    rules_wrong: int
    rules: Counts
    tier: Counts


def tier_figures(scored: Iterable[_Scored], band: tuple[float, float]) -> TierFigures:
    """Inside `band` the oracle decides: it returns the human label (`--tier-oracle label`)."""
    n = inside = wrong = 0
    rules = tier = Counts()
    for item in scored:
        n += 1
        rules = rules.add(item.refused, item.actual)
        if in_band(band, item.score):
            inside += 1
            wrong += item.refused != item.actual
            tier = tier.add(item.actual, item.actual)
        else:
            tier = tier.add(item.refused, item.actual)
    return TierFigures(n, inside, wrong, rules, tier)


def _format_tier(
    scored: Sequence[_Scored], bands: Sequence[tuple[float, float]], by: str | None
) -> str:
    groups: dict[str, Sequence[_Scored]] = {"all": scored}
    for group in _groups(scored):
        groups[f"{by}={group}"] = [item for item in scored if item.group == group]
    width = max(len("group"), *(len(name) for name in groups))
    lines = [
        "LLM tier: answers with a rules score in the band decided by the oracle 'label' (the "
        "human label; a perfect judge, so the most the band can give)",
        f"{'band':<10} {'group':<{width}} {'n':>6} {'in band':>7} {'share':>6} {'rules wrong':>11}"
        f" {'rules P':>7} {'R':>5} {'F1':>5}  {'tier P':>6} {'R':>5} {'F1':>5}",
    ]
    for band in bands:
        name = f"[{band[0]:g},{band[1]:g}]"
        for group, items in groups.items():
            f = tier_figures(items, band)
            share = f.in_band / f.n if f.n else 0.0
            lines.append(
                f"{name:<10} {group:<{width}} {f.n:>6} {f.in_band:>7} {share:>6.1%} "
                f"{f.rules_wrong:>11} {_ratio(f.rules.precision):>7} {_ratio(f.rules.recall):>5}"
                f" {_ratio(f.rules.f1):>5}  {_ratio(f.tier.precision):>6}"
                f" {_ratio(f.tier.recall):>5} {_ratio(f.tier.f1):>5}"
            )
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowjudge calibrate refusal",
        description="Score the refusal detector against human-labelled answers.",
    )
    parser.add_argument(
        "--labels",
        action="append",
        type=Path,
        required=True,
        metavar="FILE.csv",
        help="CSV with 'completion' and 'final_label' columns; repeat to concatenate files",
    )
    parser.add_argument("--by", metavar="COLUMN", help="also report per value of this column")
    parser.add_argument(
        "--leave-one-out",
        action="store_true",
        help="with --by: fit the threshold on all groups but one, report the held-out one",
    )
    parser.add_argument(
        "--tier-band",
        action="append",
        metavar="LO,HI",
        help="report the LLM tier for rules scores in [LO, HI] ('default': the config's "
        "default band); repeat for several bands",
    )
    parser.add_argument(
        "--tier-oracle",
        choices=("label",),
        default="label",
        help="what decides the answers in the band: 'label', a fake judge returning the human "
        "label (default)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `shadowjudge calibrate refusal`; returns the exit code (2: bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has already printed the usage error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    if args.leave_one_out and not args.by:
        parser.print_usage(sys.stderr)
        sys.stderr.write("error: --leave-one-out needs --by\n")
        return 2
    try:
        scored = _score(load_labels(args.labels), args.by)
        report = _format_counts(_evaluate(scored, args.by)) + "\n" + _format_kinds(scored)
        if args.leave_one_out:
            report += "\n" + _format_held_out(_leave_one_out(scored, args.by), args.by)
        if args.tier_band:
            bands = [parse_band(text) for text in args.tier_band]
            report += "\n" + _format_tier(scored, bands, args.by)
    except CalibrationError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
