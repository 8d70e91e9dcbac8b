"""Judge throughput: pairs scored and stored per second, from Kafka to chDB, one process.

    .venv/bin/python -m tests.benchmarks.judge_throughput [--pairs 50000] [--demo 10000]
        [--in-process 30000]

A Tansu broker, one `shadowjudge judge` process on a fresh chDB directory, and a fake OpenAI
provider as the LLM judge (answering at once, always "same"). Two runs:
1. structured traffic the exact and JSON tiers decide (`tests.demo_mix.deterministic_pairs`):
   the deterministic path, the issue's 5,000 pairs/s target;
2. the demo traffic mix (`tests.demo_mix`), where what the cheap tiers cannot decide goes to the
   LLM judge, asked in both orders: the share decided without an LLM call is read back from
   the store's aggregates.
Each figure is pairs written per second from the first write to the last (start-up and group
join excluded), with the judge process's CPU over that span and per 1,000 pairs.

`--in-process N` adds where the judge's CPU goes, without the broker: N deterministic pairs as
the judge receives them (bytes), parsed, scored and written in `store.batch_rows` batches by the
judge's own calls in this process (`parse_shadow_pair_view`, `Scorer.score_many`,
`Store.insert_pairs`), with the judge's collector threshold (`young_objects`); CPU per 1,000
pairs of the whole process and of each phase in the calling thread, and the collector's time
(`gc.callbacks`), the first batch left out. The phases run one after another here, while the
judge overlaps scoring with the write: the sum is the judge's CPU, not its wall time.

The physical limit beside the deterministic figure: chDB alone writing the same rows (the
calls, pairs and comparisons that run stored, read back) into a fresh database of the same
schema, in blocks of `store.batch_rows` pairs, columnar, materialized view included, with no
existence check, journal or scoring: what the judge would reach if everything but the insert
cost nothing. The load average is printed with each figure: on a shared machine, compare runs
made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

from judge.config import StoreSettings
from judge.store.store import Store
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings, TopicSettings
from mirror.events import ShadowPair, dump_event
from simulation.providers import FakeReply, openai_app, serve
from tests.benchmarks.runner_throughput import cpu_seconds
from tests.broker import TansuBroker, free_port
from tests.demo_mix import MIGRATION, demo_pairs, deterministic_pairs

CONFIG = """
providers:
  judge-llm: {{kind: openai, base_url: "{llm}", api_key_env: SJ_BENCH_KEY}}
bus: {{url: "{bus}", topics: {{pairs: "{topic}"}}}}
store: {{url: "chdb://{store}", batch_rows: {batch_rows}, batch_seconds: 0.5}}
judge:
  provider: judge-llm
  model: gpt-4.1
  max_concurrency: 64
  metrics_listen: "127.0.0.1:{port}"
"""
BATCH_ROWS = StoreSettings().batch_rows  # the default, as a judge runs
TABLES = ("calls", "pairs", "comparisons")


def written(port: int) -> float:
    try:
        # uncompressed: the judge's time on a gzip every poll is the benchmark's, not the judge's
        text = httpx2.get(
            f"http://127.0.0.1:{port}/metrics", headers={"accept-encoding": "identity"}, timeout=2
        ).text
    except httpx2.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("shadowjudge_judge_written_total "):
            return float(line.split()[-1])
    return 0.0


async def run(
    broker: TansuBroker, llm: str, pairs: Iterator[ShadowPair], n: int, name: str, tmp: Path
) -> tuple[float, float, dict[str, float]]:
    topic = f"bench.{name}"
    settings = BusSettings(url=broker.url, topics=TopicSettings(pairs=topic))
    bus = KafkaBus(settings)
    await bus.start()
    sends = [await bus.send(topic, dump_event(p), key=p.call.call_id.encode()) for p in pairs]
    await asyncio.gather(*sends)
    await bus.stop()
    port, store = free_port(), tmp / name
    config = tmp / f"{name}.yaml"
    config.write_text(
        CONFIG.format(
            llm=llm, bus=broker.url, topic=topic, store=store, port=port, batch_rows=BATCH_ROWS
        )
    )
    judge = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dashboards.command",
        "-c",
        str(config),
        "--log-level",
        "WARNING",
        "judge",
        env={**os.environ, "SJ_BENCH_KEY": "sk-bench"},
    )
    first = last = cpu_first = cpu_last = 0.0
    done = at_first = 0.0
    try:
        while done < n:
            await asyncio.sleep(0.1)
            now = await asyncio.to_thread(written, port)
            if now and not first:  # the first batch is written: measure from here
                first, cpu_first, at_first = time.perf_counter(), cpu_seconds(judge.pid), now
            if now > done:
                done, last, cpu_last = now, time.perf_counter(), cpu_seconds(judge.pid)
    finally:
        judge.terminate()
        await judge.wait()
    with Store.open(StoreSettings(url=f"chdb://{store}")) as opened:
        counts = opened.aggregate_counts(MIGRATION)
    span = last - first
    if done <= at_first:  # the span starts at the first write: one batch measures nothing
        raise SystemExit(f"{name}: every pair came in the first batch; ask for more pairs")
    return (done - at_first) / span, (cpu_last - cpu_first) / (done - at_first), counts


def chdb_alone(store: Path) -> tuple[float, float]:
    """Pairs per second (and CPU seconds per pair) chDB takes the rows of the run in `store`
    at, written into a fresh database of the same schema: see the module docstring."""
    with Store.open(StoreSettings(url=f"chdb://{store}")) as opened, opened._call("read") as ch:
        stored = {
            table: ch.query(
                f"SELECT * FROM {table}", query_formats={"String": "bytes"}, column_oriented=True
            )
            for table in TABLES
        }
    columns = {table: (list(r.column_names), r.result_columns) for table, r in stored.items()}
    pairs = len(columns["comparisons"][1][0])
    blocks = -(-pairs // BATCH_ROWS)
    settings = StoreSettings(url=f"chdb://{store}?database=alone")
    with Store.open(settings) as copy:
        copy.migrate()
        with copy._call("insert") as ch:
            started, cpu = time.perf_counter(), time.process_time()
            for block in range(blocks):
                for table, (names, data) in columns.items():
                    rows = len(data[0])
                    part = slice(block * rows // blocks, (block + 1) * rows // blocks)
                    ch.insert(
                        table,
                        [column[part] for column in data],
                        column_names=names,
                        column_oriented=True,
                        settings={
                            "insert_deduplication_token": f"alone-{block}-{table}",
                            "deduplicate_blocks_in_dependent_materialized_views": 1,
                        },
                    )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return pairs / seconds, cpu / pairs


def in_process(pairs: int) -> dict[str, float]:
    """CPU ms per 1,000 pairs: `process`, and `parse`, `score`, `store` (the calling thread's
    time in each) and `collector` (wall time inside collections)."""
    import gc

    from judge.config import JudgeSettings
    from judge.scoring import Scorer
    from judge.worker import young_objects
    from mirror.event_views import parse_shadow_pair_view as parse_shadow_pair
    from mirror.pricing import PriceTable

    raw = [dump_event(pair) for pair in deterministic_pairs(pairs)]
    scorer = Scorer(JudgeSettings(), {}, PriceTable(), None)
    collecting: list[float] = []
    started_at = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started_at[0] = time.perf_counter()
        else:
            collecting.append(time.perf_counter() - started_at[0])

    spent = dict.fromkeys(("parse", "score", "store"), 0.0)
    counted = 0
    old_threshold = gc.get_threshold()
    gc.set_threshold(young_objects(BATCH_ROWS), *old_threshold[1:])
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(StoreSettings(url=f"chdb://{tmp}/in-process"))
        try:
            store.migrate()
            process = 0.0
            for first in range(0, len(raw), BATCH_ROWS):
                batch = raw[first : first + BATCH_ROWS]
                measured = first > 0  # the first batch warms caches and imports
                if measured:
                    gc.callbacks.append(timed)
                    process -= time.process_time()
                clock = time.thread_time()
                parsed = [parse_shadow_pair(value) for value in batch]
                after_parse = time.thread_time()
                comparisons = asyncio.run(scorer.score_many(parsed))
                after_score = time.thread_time()
                store.insert_pairs(parsed, comparisons, raw_pairs=batch)
                after_store = time.thread_time()
                if measured:
                    process += time.process_time()
                    gc.callbacks.remove(timed)
                    spent["parse"] += after_parse - clock
                    spent["score"] += after_score - after_parse
                    spent["store"] += after_store - after_score
                    counted += len(batch)
        finally:
            store.close()
            gc.set_threshold(*old_threshold)
    per = 1e6 / max(counted, 1)
    return {
        "process": process * per,
        **{phase: seconds * per for phase, seconds in spent.items()},
        "collector": sum(collecting) * per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--demo", type=int, default=10_000, help="0: the deterministic run only")
    parser.add_argument(
        "--in-process", type=int, default=0, help="pairs for the in-process breakdown; 0: none"
    )
    args = parser.parse_args()
    if args.in_process > 0:
        ms = in_process(args.in_process)
        print(  # noqa: T201
            f"in process, CPU per 1,000 pairs: {ms['process']:.0f} ms the process; in the"
            f" calling thread parse {ms['parse']:.0f}, score {ms['score']:.0f}, store"
            f" {ms['store']:.0f}; collector {ms['collector']:.0f}"
            f" ({args.in_process:,} pairs in {BATCH_ROWS:,}-pair batches, the first left out;"
            f" load {os.getloadavg()[0]:.2f})"
        )
    verdict = FakeReply(text='{"verdict": "same", "reason": "both answer the question"}')
    llm_app = openai_app(responder=lambda body, headers: verdict)
    broker = TansuBroker()
    broker.start()
    try:
        with serve(llm_app, timeout_keep_alive=75) as llm, tempfile.TemporaryDirectory() as tmp:
            rate, cpu, _ = asyncio.run(
                run(
                    broker,
                    llm.url,
                    deterministic_pairs(args.pairs),
                    args.pairs,
                    "deterministic",
                    Path(tmp),
                )
            )
            demo = None
            if args.demo > 0:  # before chdb_alone: one chDB engine per process, on one directory
                asked_before = len(llm_app.requests)
                demo = asyncio.run(
                    run(broker, llm.url, demo_pairs(args.demo), args.demo, "demo", Path(tmp))
                )
                llm_calls = len(llm_app.requests) - asked_before
            alone, alone_cpu = chdb_alone(Path(tmp) / "deterministic")
            print(  # noqa: T201
                f"judge {rate:,.0f} pairs/s scored and stored, Kafka to chDB, deterministic tiers,"
                f" {rate / alone:.2f} of chDB alone writing the same rows ({alone:,.0f} pairs/s "
                f"in {BATCH_ROWS:,}-pair blocks); CPU per 1,000 pairs: judge {cpu * 1e6:.0f} ms "
                f"({cpu * rate:.0%} of a core), chDB alone {alone_cpu * 1e6:.0f} ms "
                f"({args.pairs:,} pairs, load {os.getloadavg()[0]:.2f})"
            )
            if demo is None:
                return
            rate, cpu, counts = demo
            decided = counts["tier_exact"] + counts["tier_json"]
            print(  # noqa: T201
                f"demo mix: {rate:,.0f} pairs/s with the LLM tier (judge CPU {cpu * rate:.0%}, "
                f"{cpu * 1e6:.0f} ms per 1,000 pairs); "
                f"{decided / counts['pairs']:.1%} decided without an LLM call "
                f"(exact {counts['tier_exact']:.0f}, json {counts['tier_json']:.0f}, "
                f"llm {counts['tier_llm']:.0f}, not judged {counts['tier_none']:.0f} of "
                f"{counts['pairs']:.0f}; {llm_calls:,} judge requests, "
                f"{counts['cached_verdicts']:.0f} verdicts from the cache)"
            )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
