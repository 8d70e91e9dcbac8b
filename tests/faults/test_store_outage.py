"""The store runs out of space for 10 s: the judge waits, says it is degraded, loses nothing.

With a real full disk where the machine allows mounting a small tmpfs (root on Linux): a judge
process whose chDB directory is on a 64 MiB tmpfs, filled up by a file while pairs arrive. On
machines that do not allow it, the same scenario in process with the store's own error
(`NOT_ENOUGH_SPACE`, as chDB raises it) injected for 10 s.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from judge.comparison import Comparison
from judge.config import JudgeSettings
from judge.errors import store_error
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from judge.worker import JudgeWorker
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings
from mirror.events import ShadowPair, dump_event
from mirror.pricing import PriceTable
from tests.broker import TansuBroker, free_port
from tests.faults.harness import (
    eventually,
    health,
    read_all,
    scrape,
    start_role,
    stop_role,
    unique_topics,
)
from tests.judge.store.test_store import make_pair

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

BEFORE, DURING = 100, 300
OUTAGE_S = 10.0
WRITTEN = "shadowjudge_judge_written_total"
CONFIG = """
bus: {{url: "{bus}", partitions: 2, topics: {{calls: {calls}, pairs: {pairs}, dlq: {dlq}}}}}
store: {{url: "chdb://{store}", batch_rows: 50, batch_seconds: 0.1}}
judge: {{metrics_listen: "127.0.0.1:{port}"}}
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 20))
                handle.flush()
        except OSError:
            pass  # no space left: that is the point
    return filler


async def publish(bus: KafkaBus, topic: str, pairs: Sequence[ShadowPair]) -> None:
    sends = [await bus.send(topic, dump_event(p), key=p.call.call_id.encode()) for p in pairs]
    await asyncio.gather(*sends)


def count_in(store_dir: Path) -> int:
    """Rows counted by a process of its own (chDB allows one directory per process)."""
    code = (
        "import sys\n"
        "from judge.config import StoreSettings\n"
        "from judge.store.store import Store\n"
        "with Store.open(StoreSettings(url=sys.argv[1])) as store:\n"
        "    print(store.count_comparisons('m1'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, f"chdb://{store_dir}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(out.stdout.strip().splitlines()[-1])


async def test_a_full_disk_is_waited_out_with_nothing_lost(
    kafka: TansuBroker, small_disk: Path, tmp_path: Path
) -> None:
    topics = unique_topics()
    bus = KafkaBus(BusSettings(url=kafka.url, topics=topics, partitions=2))
    await bus.start()
    port = free_port()
    config = tmp_path / "shadowjudge.yaml"
    store_dir = small_disk / "store"
    config.write_text(
        CONFIG.format(bus=kafka.url, store=store_dir, port=port, **topics.model_dump())
    )
    judge = await start_role("judge", config, tmp_path / "judge.log")
    try:
        first = [make_pair(i) for i in range(BEFORE)]
        await publish(bus, topics.pairs, first)

        async def written(n: int) -> bool:
            return (await asyncio.to_thread(scrape, port)).get(WRITTEN, -1) >= n

        await eventually(lambda: written(BEFORE), 60, "the first pairs")
        filler = await asyncio.to_thread(fill, small_disk)
        await publish(bus, topics.pairs, [make_pair(BEFORE + i) for i in range(DURING)])

        async def degraded() -> bool:
            state = await asyncio.to_thread(health, port)
            return state.get("status") == "degraded" and "full" in state.get("reason", "")

        await eventually(degraded, 30, "the judge to report the full store")
        assert (await asyncio.to_thread(scrape, port))["shadowjudge_judge_degraded"] == 1
        await asyncio.sleep(OUTAGE_S)
        assert (await asyncio.to_thread(health, port))["status"] == "degraded"
        filler.unlink()
        await eventually(lambda: written(BEFORE + DURING), 90, "every pair after the outage")
        assert (await asyncio.to_thread(health, port)) == {"status": "ok"}
        samples = await asyncio.to_thread(scrape, port)
        assert samples[WRITTEN] == BEFORE + DURING
        assert samples['shadowjudge_judge_store_waits_total{condition="full"}'] >= 1
        assert samples.get('shadowjudge_judge_dead_letters_total{kind="store"}', 0) == 0
        assert await stop_role(judge) < 15
    finally:
        if judge.returncode is None:
            judge.kill()
            await judge.wait()
        await bus.stop()
    assert await read_all(kafka.bootstrap, topics.dlq) == []
    assert await asyncio.to_thread(count_in, store_dir) == BEFORE + DURING


class FullFor:
    """The store, refusing every write with chDB's own NOT_ENOUGH_SPACE until `until`."""

    def __init__(self, store: AsyncStore, seconds: float) -> None:
        self._store = store
        self.until = time.monotonic() + seconds
        self.refused = 0

    async def insert_pairs(
        self, pairs: Sequence[ShadowPair], comparisons: Sequence[Comparison], **kw: Any
    ) -> int:
        if time.monotonic() < self.until:
            self.refused += 1
            error = DatabaseError("Code: 243. Cannot reserve 1.00 MiB, not enough space.")
            error.code = 243  # type: ignore[attr-defined]
            raise store_error(error, "insert into comparisons") from error
        return await self._store.insert_pairs(pairs, comparisons, **kw)


async def test_an_injected_full_store_is_waited_out_in_process(
    kafka: TansuBroker, migrated_store: AsyncStore
) -> None:
    topics = unique_topics()
    bus = KafkaBus(BusSettings(url=kafka.url, topics=topics, partitions=2))
    await bus.start()
    full = FullFor(migrated_store, OUTAGE_S)
    worker = JudgeWorker(
        bus=bus,
        topics=topics,
        scorer=Scorer(JudgeSettings(), {}, PriceTable(), None),
        store=full,  # type: ignore[arg-type]
        batch_rows=50,
        batch_seconds=0.1,
        group=f"judge-{topics.pairs}",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await publish(bus, topics.pairs, [make_pair(i) for i in range(DURING)])
        await eventually(lambda: _true(full.refused > 0), 30, "the first refused write")
        assert worker.health()["status"] == "degraded"
        assert "full" in worker.health()["reason"]
        written = worker.metrics.registry.get_sample_value
        await eventually(
            lambda: _true(written("shadowjudge_judge_written_total") == DURING),
            OUTAGE_S + 60,
            "every pair after the outage",
        )
        assert worker.health() == {"status": "ok"}
        assert time.monotonic() >= full.until
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await bus.stop()
    assert await migrated_store.run(migrated_store.store.count_comparisons, "m1") == DURING
    assert await read_all(kafka.bootstrap, topics.dlq) == []


async def _true(value: bool) -> bool:
    return value
