"""Store write throughput on chDB: `Store.insert_pairs` with realistic batches.

    .venv/bin/python -m tests.benchmarks.store_insert [--batches 10] [--rows 5000] [--body 1000]

Builds a batch of `--rows` pairs with ~`--body`-byte request bodies and their comparisons,
times writing it into a fresh chDB directory (the existence check, calls, pairs, comparisons
and the materialized view), then times replaying it (every key already stored), and drops it
before building the next: a worker holds one batch at a time, and a heap of 50,000 pairs would
make Python's garbage collector, not the store, the thing measured. Prints e.g.
`store insert 16,000 rows/s (5,000-row batches, 310 ms each; replay 95,000 rows/s)`.
`--raw` passes the pairs' JSON as read from the bus (`raw_pairs`) instead of re-dumping it.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from judge.config import StoreSettings
from judge.store.store import Store
from mirror.events import dump_event
from tests.judge.store.test_store import make_comparison, make_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--body", type=int, default=1_000)
    parser.add_argument("--raw", action="store_true")
    args = parser.parse_args()
    fresh = replay = 0.0
    with (
        tempfile.TemporaryDirectory() as directory,
        Store.open(StoreSettings(url=f"chdb://{directory}")) as store,
    ):
        store.migrate()
        for _ in range(args.batches):
            pairs = [make_pair(i % 500, body_bytes=args.body) for i in range(args.rows)]
            comparisons = [make_comparison(p, i) for i, p in enumerate(pairs)]
            raw = [dump_event(p) for p in pairs] if args.raw else None
            started = time.perf_counter()
            assert store.insert_pairs(pairs, comparisons, raw_pairs=raw) == len(comparisons)
            fresh += time.perf_counter() - started
            started = time.perf_counter()
            assert store.insert_pairs(pairs, comparisons, raw_pairs=raw) == 0
            replay += time.perf_counter() - started
            del pairs, comparisons, raw
    total = args.batches * args.rows
    print(  # noqa: T201
        f"store insert {total / fresh:,.0f} rows/s ({args.rows:,}-row batches,"
        f" {fresh / args.batches * 1000:.0f} ms each; replay {total / replay:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
