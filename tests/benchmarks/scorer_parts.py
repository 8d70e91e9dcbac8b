"""The scorer's Python by part: µs of CPU a pair that each part of `Scorer.score_many` takes.

    .venv/bin/python -m tests.benchmarks.scorer_parts [--pairs 5000] [--rounds 5]

Pairs of structured traffic (`tests.demo_mix.deterministic_pairs`) and of the demo mix
(`demo_pairs`), parsed as the judge parses them (`parse_shadow_pair_view`). Each part runs over
the whole batch (the pairs it applies to: `format_drift` and the cheap tiers only where both
answers are usable, as in the scorer) and is timed in thread CPU, the best of `--rounds`
passes, divided by the batch's pairs; one line a part, structured / demo. A part run alone
pays the first touch of the pair's objects that in `score_many` only the first part pays, so
the parts add up to more than `score_many`. To compare two trees, run this in each, alternated,
on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from judge.config import JudgeSettings
from judge.scorers.equivalence import exact_match, unusable_reason
from judge.scorers.format_drift import format_drift
from judge.scorers.pairwise import extract_user
from judge.scoring import Scorer
from mirror.event_views import parse_shadow_pair_view
from mirror.events import Output, ShadowPair, dump_event
from mirror.pricing import PriceTable
from tests.demo_mix import demo_pairs, deterministic_pairs

Part = Callable[[list[ShadowPair]], Callable[[], object]]


def _scorer() -> Scorer:
    return Scorer(JudgeSettings(), {}, PriceTable(), None)


def _answers(pairs: list[ShadowPair]) -> list[tuple[Output, Output]]:
    """Both answers of the pairs whose answers are both usable."""
    found = []
    for pair in pairs:
        primary, candidate = pair.call.primary, pair.result
        if unusable_reason(primary, "p") is None and unusable_reason(candidate, "c") is None:
            assert primary.output is not None and candidate.output is not None
            found.append((primary.output, candidate.output))
    return found


def _user(pairs: list[ShadowPair]) -> Callable[[], object]:
    return lambda: [extract_user(p.call.api, p.call.request) for p in pairs]


def _unusable(pairs: list[ShadowPair]) -> Callable[[], object]:
    return lambda: [
        (unusable_reason(p.call.primary, "primary"), unusable_reason(p.result, "candidate"))
        for p in pairs
    ]


def _drift(pairs: list[ShadowPair]) -> Callable[[], object]:
    answers = _answers(pairs)
    return lambda: [format_drift(a, b) for a, b in answers]


def _tiers(pairs: list[ShadowPair]) -> Callable[[], object]:
    answers, cascade = _answers(pairs), _scorer().cascade
    return lambda: [cascade.decide_usable(a, b) for a, b in answers]


def _exact(pairs: list[ShadowPair]) -> Callable[[], object]:
    answers = _answers(pairs)
    return lambda: [exact_match(a, b) for a, b in answers]


def _cost(pairs: list[ShadowPair]) -> Callable[[], object]:
    prices = PriceTable()
    kinds = [p.call.api.provider_kind for p in pairs]
    sides = [
        (side.model, side.usage, kind)
        for p, kind in zip(pairs, kinds, strict=True)
        for side in (p.call.primary, p.result)
    ]
    return lambda: [prices.cost(model, usage, kind) for model, usage, kind in sides]


def _build(pairs: list[ShadowPair]) -> Callable[[], object]:
    scorer, now = _scorer(), datetime.now(UTC)
    prepared = [scorer._prepare(p) for p in pairs]
    return lambda: [scorer._build(p, p.equivalence, now) for p in prepared]  # type: ignore[arg-type]


def _score_many(pairs: list[ShadowPair]) -> Callable[[], object]:
    scorer = _scorer()
    batches = [pairs[i : i + 1000] for i in range(0, len(pairs), 1000)]
    return lambda: [asyncio.run(scorer.score_many(batch)) for batch in batches]


PARTS: dict[str, Part] = {
    "extract_user": _user,
    "unusable_reason, both sides": _unusable,
    "format_drift": _drift,
    "the cheap tiers (decide_usable)": _tiers,
    "  of which exact_match": _exact,
    "PriceTable.cost, both sides": _cost,
    "Scorer._build": _build,
    "Scorer.score_many, all of it": _score_many,
}


def per_pair(run: Callable[[], object], pairs: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best * 1e6 / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    mixes = {
        "structured": [
            parse_shadow_pair_view(dump_event(p)) for p in deterministic_pairs(args.pairs)
        ],
        "demo": [parse_shadow_pair_view(dump_event(p)) for p in demo_pairs(args.pairs)],
    }
    for name, part in PARTS.items():
        figures = [per_pair(part(pairs), len(pairs), args.rounds) for pairs in mixes.values()]
        print(  # noqa: T201
            f"{name:32} "
            + " / ".join(f"{mix} {µs:6.2f}" for mix, µs in zip(mixes, figures, strict=True))
            + " µs a pair"
        )


if __name__ == "__main__":
    main()
