"""ClickHouse storage per million pairs, measured on chDB (the sizing note in deploy/README.md).

    .venv/bin/python -m tests.deploy.storage [--pairs 100000] [--batch 5000]

Scores the demo traffic mix (`tests.demo_mix.demo_pairs`: extraction, tool calls, labels, free
text, noise and errors, with their request bodies) with the real scorer, the LLM tier off (a
verdict reason is a short string either way), writes it through `Store.insert_pairs` in
judge-sized batches into a fresh chDB directory, merges the parts (`OPTIMIZE ... FINAL`, as
background merges would) and reads `bytes_on_disk` of the active parts per table. Prints each
table's share and the total per million pairs, e.g.
`chDB storage per million pairs: 1,234 MB (calls 500 MB, pairs 600 MB, ...)`.
Bodies are stored for `store.body_ttl_days`; the last column says what stays after the TTL
emptied them (`pairs.pair_json`, `calls.request_body`, `calls.primary_output`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from itertools import islice

from dashboards.settings import Settings
from judge.config import StoreSettings
from judge.scoring import Scorer
from judge.store.store import Store
from mirror.pricing import PriceTable
from tests.demo_mix import demo_pairs

TABLES = ("calls", "pairs", "comparisons", "comparison_stats_hourly")
BODIES = (("calls", "request_body"), ("calls", "primary_output"), ("pairs", "pair_json"))


async def fill(store: Store, n: int, batch: int) -> None:
    settings = Settings.model_validate({})
    async with Scorer(settings.judge, settings.providers, PriceTable(settings.prices), None) as s:
        source = demo_pairs(n)
        while chunk := list(islice(source, batch)):
            comparisons = await s.score_many(chunk)
            store.insert_pairs(chunk, comparisons)


def measure(n: int, batch: int) -> str:
    with (
        tempfile.TemporaryDirectory() as directory,
        Store.open(StoreSettings(url=f"chdb://{directory}")) as store,
    ):
        store.migrate()
        asyncio.run(fill(store, n, batch))
        for table in TABLES:
            # Wide parts, as a table of this size has in production: a small (compact) part
            # does not say what each column takes, and the bodies' share is read per column.
            store.select(
                f"ALTER TABLE {table} MODIFY SETTING min_bytes_for_wide_part = 0,"
                " min_rows_for_wide_part = 0"
            )
            store.select(f"OPTIMIZE TABLE {table} FINAL")
        sizes = {
            row["table"]: row["bytes"]
            for row in store.select(
                "SELECT table, sum(bytes_on_disk) AS bytes FROM system.parts"
                " WHERE active AND database = currentDatabase() GROUP BY table"
            )
        }
        bodies = sum(
            row["bytes"]
            for row in store.select(
                "SELECT sum(column_data_compressed_bytes) AS bytes FROM system.parts_columns"
                " WHERE active AND database = currentDatabase()"
                " AND (table, column) IN {bodies:Array(Tuple(String, String))}",
                {"bodies": list(BODIES)},
            )
        )
        stored = store.count_comparisons()
    assert stored == n, f"{stored} comparisons stored of {n}"
    per_million = 1_000_000 / n / 1e6  # bytes for n pairs -> MB per million
    total = sum(sizes.get(t, 0) for t in TABLES)
    shares = ", ".join(f"{t} {sizes.get(t, 0) * per_million:,.0f} MB" for t in TABLES)
    return (
        f"chDB storage per million pairs: {total * per_million:,.0f} MB ({shares};"
        f" {(total - bodies) * per_million:,.0f} MB once the body TTL has emptied the bodies;"
        f" measured on {n:,} demo-mix pairs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    print(measure(args.pairs, args.batch))  # noqa: T201


if __name__ == "__main__":
    main()
