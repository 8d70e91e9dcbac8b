"""Refusal detector speed: answers per second on one core, with and without the request.

    .venv/bin/python -m tests.benchmarks.refusal_speed [--rounds 5]

Two corpora: XSTest's 1,350 labelled answers (tests/data/xstest, with their prompts), and 4 kB
answers made by joining XSTest answers until each passes 4,096 characters (the detector reads
at most `BODY_CHARS`, so longer answers cost the same). Each figure is answers per second of
this process's CPU time (`time.process_time`), the best of `--rounds` passes: on a shared
machine wall time also counts the other processes' turns. Prints e.g. (2 shared cores)
`refusal detector refusal-rules-2: 15,205 answers/s on 1,350 XSTest answers (with request
14,233); 10,829/s on 201 4 kB answers (with request 10,407); goal 10,000/s` (three runs
alternated with the same rules before their patterns were reworked for speed, same
verdicts: 14,651-15,205 (13,856-14,233) and 10,124-10,829 (9,725-10,407), against
12,077-12,354 (11,091-11,360) and 6,872-7,026 (6,597-6,775)); the detector before the
implicit-refusal rules did about 16,400 and 8,500.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from judge.scorers.refusal import DETECTOR_VERSION, detect_refusal

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


def per_second(pairs: Sequence[tuple[str, str]], with_request: bool, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        if with_request:
            for answer, request in pairs:
                detect_refusal(answer, request)
        else:
            for answer, _ in pairs:
                detect_refusal(answer)
        best = min(best, time.process_time() - start)
    return len(pairs) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    short = xstest_pairs()
    long = long_pairs(short)
    figures = {
        (name, with_request): per_second(pairs, with_request, args.rounds)
        for name, pairs in (("xstest", short), ("4kB", long))
        for with_request in (False, True)
    }
    sys.stdout.write(
        f"refusal detector {DETECTOR_VERSION}: {figures['xstest', False]:,.0f} answers/s on "
        f"{len(short):,} XSTest answers (with request {figures['xstest', True]:,.0f}); "
        f"{figures['4kB', False]:,.0f}/s on {len(long):,} 4 kB answers (with request "
        f"{figures['4kB', True]:,.0f}); goal {GOAL:,}/s\n"
    )


if __name__ == "__main__":
    main()
