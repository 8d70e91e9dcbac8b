"""Exactly once in effect: the judge is SIGKILLed while consuming 5,000 pairs, and restarted.

Afterwards `comparisons` holds 5,000 distinct keys and the aggregate tables, filled by the
materialized view on every insert, agree with a direct count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import clickhouse_connect
import httpx2

from judge.config import StoreSettings
from judge.store.store import Store
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings
from mirror.events import dump_event
from tests.broker import TansuBroker, free_port
from tests.judge.store.test_store import make_pair

PAIRS = 5000
WRITTEN = "shadowjudge_judge_written_total"
READ = "shadowjudge_judge_pairs_total"
LAG = "shadowjudge_judge_lag"
CONFIG = """
bus: {bus}
store: {{url: "chdb://{store}", batch_rows: 100, batch_seconds: 0.2}}
judge: {{metrics_listen: "127.0.0.1:{port}"}}
"""


def metric(port: int, name: str) -> float:
    """The metric's value; -1 while the judge's metrics endpoint is not up."""
    try:
        text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx2.HTTPError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def start_judge(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dashboards.command",
        "-c",
        str(config),
        "--log-level",
        "WARNING",
        "judge",
        env=dict(os.environ),
    )


async def wait_for(condition, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):  # the probe is a blocking HTTP call
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_sigkill_mid_stream_counts_every_pair_once(
    own_kafka: TansuBroker, tmp_path: Path
) -> None:
    settings = BusSettings(url=own_kafka.url)
    bus = KafkaBus(settings)
    await bus.start()
    pairs = [make_pair(i, arm=f"arm{i % 2}") for i in range(PAIRS)]
    sends = [
        await bus.send(settings.topics.pairs, dump_event(p), key=p.call.call_id.encode())
        for p in pairs
    ]
    await asyncio.gather(*sends)
    await bus.stop()

    port = free_port()
    store_dir = tmp_path / "store"
    config = tmp_path / "shadowjudge.yaml"
    config.write_text(CONFIG.format(bus=own_kafka.url, store=store_dir, port=port))
    judge = await start_judge(config)
    try:
        await wait_for(lambda: metric(port, WRITTEN) >= 1000, 60)
        assert metric(port, WRITTEN) < PAIRS, "finished before the kill; use smaller batches"
        judge.send_signal(signal.SIGKILL)
        await judge.wait()
        judge = await start_judge(config)
        # The restarted judge redoes the uncommitted batches (skipping what the store has) and
        # the rest; it is done when it has read something and has nothing left to read.
        await wait_for(lambda: metric(port, READ) > 0 and metric(port, LAG) == 0, 100)
        judge.terminate()
        assert await asyncio.wait_for(judge.wait(), 30) == 0
    finally:
        if judge.returncode is None:
            judge.kill()
            await judge.wait()

    with Store.open(StoreSettings(url=f"chdb://{store_dir}")) as store:
        assert store.count_comparisons("m1") == PAIRS
        counts = store.aggregate_counts("m1")
        assert counts["pairs"] == PAIRS
    client = clickhouse_connect.get_client(dsn=f"chdb://{store_dir}")
    try:
        direct = client.query(
            "SELECT verdict, count() FROM (SELECT DISTINCT call_id, migration, arm,"
            " judge_version, verdict FROM comparisons) GROUP BY verdict"
        ).result_rows
    finally:
        client.close()
    with Store.open(StoreSettings(url=f"chdb://{store_dir}")) as store:
        counts = store.aggregate_counts("m1")
        for verdict, n in direct:
            assert counts[f"verdict_{verdict}"] == n, verdict
        by_segment = store.aggregate_counts("m1", segment="tenant=acme")
        assert by_segment["pairs"] == sum(1 for p in pairs if p.call.segment["tenant"] == "acme")
