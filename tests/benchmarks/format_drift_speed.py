"""Format-drift speed: microseconds per pair on typical answers, beside a baseline.

    .venv/bin/python -m tests.benchmarks.format_drift_speed [--rounds 20000]

Three pair shapes a judge meets all day (a JSON object against a fenced, changed one; two
paragraphs of text; two tool calls with changed arguments), each scored `--rounds` times by
`judge.scorers.format_drift.format_drift`. The baseline is what any judge pays per pair before
it looks at formats: `orjson.loads` of both answers' JSON. Prints the µs per pair of each and
their ratio (the issue's figure: well under 50 µs per pair).
"""

from __future__ import annotations

import argparse
import time

import orjson

from judge.scorers.format_drift import format_drift
from tests.judge.scorers.test_format_drift import j, out

RECORD = {"name": "Alice", "age": 30, "tags": ["a", "b"], "address": {"city": "P", "zip": "1"}}
CHANGED = {"name": "Alice", "age": "30", "tags": ["a"], "address": {"city": "P", "code": "1"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    pairs = [
        (out(j(RECORD)), out("```json\n" + j(CHANGED) + "\n```")),
        (out("The capital of France is Paris. " * 8), out("Paris is the capital. " * 9)),
        (out(tools=(("search", j(RECORD)),)), out(tools=(("search", j(CHANGED)),))),
    ]
    texts = [(j(RECORD), j(CHANGED))] * len(pairs)
    started = time.perf_counter()
    for _ in range(args.rounds):
        for primary, candidate in pairs:
            format_drift(primary, candidate)
    drift_us = (time.perf_counter() - started) / (args.rounds * len(pairs)) * 1e6
    started = time.perf_counter()
    for _ in range(args.rounds):
        for primary_text, candidate_text in texts:
            orjson.loads(primary_text)
            orjson.loads(candidate_text)
    baseline_us = (time.perf_counter() - started) / (args.rounds * len(texts)) * 1e6
    print(  # noqa: T201
        f"format_drift {drift_us:.1f} µs per pair; baseline (orjson.loads of both answers)"
        f" {baseline_us:.1f} µs; ratio {drift_us / baseline_us:.1f}x"
    )


if __name__ == "__main__":
    main()
