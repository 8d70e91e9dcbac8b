"""Refusal detector speed: answers per second on one core, with and without the request.

    .venv/bin/python -m tests.benchmarks.refusal_speed [--rounds 5] [--mix-pairs 5000] [--frozen]

Corpora: XSTest's 1,350 labelled answers (tests/data/xstest, with their prompts); 4 kB answers
made by joining XSTest answers until each passes 4,096 characters (the detector reads at most
`BODY_CHARS`, so longer answers cost the same); and both sides of `--mix-pairs` pairs of the
judge benchmark's traffic (`tests.demo_mix`: `demo_pairs`, half JSON and labels, a quarter
XSTest answers; `deterministic_pairs`, JSON, labels and tool-call preambles), each with the
request the judge passes, given as microseconds an answer. Each figure is of this process's
CPU time (`time.process_time`), the best of `--rounds` passes: on a shared machine wall time
also counts the other processes' turns. Prints e.g. (2 shared cores, load 2-3)
`refusal detector refusal-rules-2: 16,850 answers/s on 1,350 XSTest answers (with request
16,469); 11,247/s on 201 4 kB answers (with request 11,356); goal 10,000/s; with the request,
20.7 us an answer of demo_pairs(5000) (8,344), 2.9 us of deterministic_pairs(5000) (7,921)`.
The rules before their prefilters (`--frozen`: tests/judge/scorers/refusal_rules_2, same
verdicts), three runs alternated with it: 14,987-15,136 (13,863-14,173), 10,780-10,904
(10,274-10,433), 35.1-35.4 and 18.5-18.6 us, against 16,510-16,850 (16,246-16,469),
11,073-11,247 (11,216-11,356), 20.7-22.3 and 2.9 us. Before that, three
runs alternated with the same rules before their patterns were reworked for speed, same
verdicts: 14,651-15,205 (13,856-14,233) and 10,124-10,829 (9,725-10,407), against
12,077-12,354 (11,091-11,360) and 6,872-7,026 (6,597-6,775); the detector before the
implicit-refusal rules did about 16,400 and 8,500.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from judge.scorers.pairwise import extract_question
from judge.scorers.refusal import DETECTOR_VERSION, detect_refusal
from mirror.events import ShadowPair
from tests.demo_mix import demo_pairs, deterministic_pairs
from tests.judge.scorers.refusal_rules_2 import refusal as frozen

XSTEST = Path(__file__).resolve().parents[1] / "data" / "xstest"
GOAL = 10_000
LONG_CHARS = 4096


def xstest_pairs() -> list[tuple[str, str]]:
    """(answer, request) for every labelled XSTest completion."""
    pairs: list[tuple[str, str]] = []
    csv.field_size_limit(16 * 1024 * 1024)
    for path in sorted(XSTEST.glob("xstest_v2_completions_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            pairs += [(row["completion"], row["prompt"]) for row in csv.DictReader(handle)]
    return pairs


def long_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """4 kB answers: consecutive XSTest answers joined, with the first one's request."""
    joined: list[tuple[str, str]] = []
    text, request = "", ""
    for answer, prompt in pairs:
        if not text:
            request = prompt
        text = f"{text}\n\n{answer}" if text else answer
        if len(text) >= LONG_CHARS:
            joined.append((text, request))
            text = ""
    return joined


def mix_pairs(mix: Callable[[int], Iterable[ShadowPair]], n: int) -> list[tuple[str, str]]:
    """(answer, request) for both sides of `n` pairs of a demo mix, as the judge reads them
    (the request's last user message; "" where the call keeps none)."""
    found: list[tuple[str, str]] = []
    for pair in mix(n):
        question = extract_question(pair.call.api, pair.call.request)
        for side in (pair.call.primary, pair.result):
            if side.output is not None and side.output.text:
                found.append((side.output.text, question.user if question else ""))
    return found


Detect = Callable[[str, str | None], object]


def per_second(
    pairs: Sequence[tuple[str, str]], with_request: bool, rounds: int, detect: Detect
) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        if with_request:
            for answer, request in pairs:
                detect(answer, request or None)
        else:
            for answer, _ in pairs:
                detect(answer, None)
        best = min(best, time.process_time() - start)
    return len(pairs) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mix-pairs", type=int, default=5000)
    parser.add_argument(
        "--frozen", action="store_true", help="time the rules before their prefilters instead"
    )
    args = parser.parse_args()
    detect: Detect = frozen.detect_refusal if args.frozen else detect_refusal
    short = xstest_pairs()
    long = long_pairs(short)
    figures = {
        (name, with_request): per_second(pairs, with_request, args.rounds, detect)
        for name, pairs in (("xstest", short), ("4kB", long))
        for with_request in (False, True)
    }
    mixes = {
        name: mix_pairs(mix, args.mix_pairs)
        for name, mix in (("demo", demo_pairs), ("deterministic", deterministic_pairs))
    }
    micros = {
        name: 1e6 / per_second(pairs, True, args.rounds, detect) for name, pairs in mixes.items()
    }
    sys.stdout.write(
        f"refusal detector {DETECTOR_VERSION}{' (frozen)' if args.frozen else ''}: "
        f"{figures['xstest', False]:,.0f} answers/s on "
        f"{len(short):,} XSTest answers (with request {figures['xstest', True]:,.0f}); "
        f"{figures['4kB', False]:,.0f}/s on {len(long):,} 4 kB answers (with request "
        f"{figures['4kB', True]:,.0f}); goal {GOAL:,}/s; with the request, "
        f"{micros['demo']:.1f} us an answer of demo_pairs({args.mix_pairs}) "
        f"({len(mixes['demo']):,}), {micros['deterministic']:.1f} us of "
        f"deterministic_pairs({args.mix_pairs}) ({len(mixes['deterministic']):,})\n"
    )


if __name__ == "__main__":
    main()
