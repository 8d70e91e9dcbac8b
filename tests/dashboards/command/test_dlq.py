"""`shadowjudge dlq list|replay` against the real broker, and a replay that reaches the store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dashboards.command.main import main
from judge.config import JudgeSettings
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from judge.worker import JudgeWorker
from mirror.bus.base import Record
from mirror.bus.dlq import DeadLetterKind, dead_letter
from mirror.bus.kafka import KafkaBus
from mirror.bus.retry import deliver
from mirror.config import BusSettings
from mirror.events import dump_event
from mirror.pricing import PriceTable
from tests.broker import TansuBroker
from tests.faults.harness import eventually, read_all, unique_topics
from tests.judge.store.test_store import make_pair

pytestmark = [pytest.mark.kafka, pytest.mark.faults]


async def put_letters(
    settings: BusSettings, letters: list[tuple[Record, str, DeadLetterKind]]
) -> None:
    bus = KafkaBus(settings)
    await bus.start()
    try:
        messages = [
            dead_letter(settings.topics.dlq, record, reason, kind, max_message_bytes=64 << 10)
            for record, reason, kind in letters
        ]
        await deliver(bus, messages)
    finally:
        await bus.stop()


def write_config(tmp_path: Path, settings: BusSettings) -> Path:
    config = tmp_path / "shadowjudge.yaml"
    topics = settings.topics
    config.write_text(
        f'bus: {{url: "{settings.url}", partitions: 2, topics: {{calls: {topics.calls}, '
        f"pairs: {topics.pairs}, dlq: {topics.dlq}}}}}\n"
    )
    return config


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_list_and_replay_round_trip(
    kafka: TansuBroker,
    tmp_path: Path,
    migrated_store: AsyncStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = unique_topics()
    settings = BusSettings(url=kafka.url, topics=topics, partitions=2)
    config = str(write_config(tmp_path, settings))
    pairs = [make_pair(i) for i in range(6)]
    refused = [
        (
            Record(topics.pairs, i % 2, 10 + i, p.call.call_id.encode(), dump_event(p)),
            "store refused: Code: 53. Type mismatch",
            DeadLetterKind.STORE,
        )
        for i, p in enumerate(pairs)
    ]
    poison = [
        (
            Record(topics.pairs, 0, 1, None, b"not json"),
            "not a ShadowPair: <root>",
            DeadLetterKind.POISON,
        ),
        (
            Record(topics.calls, 1, 2, None, b"x" * (100 << 10)),
            "not a CapturedCall",
            DeadLetterKind.POISON,
        ),
    ]
    await put_letters(settings, refused + poison)

    assert await cli("-c", config, "dlq", "list") == 0
    table = capsys.readouterr().out
    assert "      6      0" in table and "store" in table and "Type mismatch" in table
    assert "      8  total" in table
    assert await cli("-c", config, "dlq", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["total"] == 8
    by_kind = {(g["kind"], g["source"]): g for g in listed["groups"]}
    assert by_kind[("poison", topics.calls)]["truncated"] == 1

    # A dry run sends and commits nothing.
    assert await cli("-c", config, "dlq", "replay", "--kind", "store", "--dry-run") == 0
    assert capsys.readouterr().out.strip().startswith("would replay 6, skipped 2")
    assert await read_all(kafka.bootstrap, topics.pairs) == []

    # The cause is fixed: replay the store's letters; the judge stores every pair once.
    assert await cli("-c", config, "dlq", "replay", "--kind", "store") == 0
    out = capsys.readouterr().out.strip()
    assert out == "replayed 6, skipped 2 (filtered 2, truncated 0, no source 0)"
    back = await read_all(kafka.bootstrap, topics.pairs)
    assert sorted(r.value for r in back) == sorted(dump_event(p) for p in pairs)
    assert all(dict(r.headers)["replayed_from"].startswith(topics.dlq.encode()) for r in back)
    # Once each for the group: a second replay finds nothing new.
    assert await cli("-c", config, "dlq", "replay") == 0
    assert capsys.readouterr().out.strip().startswith("replayed 0, skipped 0")

    bus = KafkaBus(settings)
    await bus.start()
    worker = JudgeWorker(
        bus=bus,
        topics=topics,
        scorer=Scorer(JudgeSettings(), {}, PriceTable(), None),
        store=migrated_store,
        batch_rows=50,
        batch_seconds=0.1,
        group=f"judge-{topics.pairs}",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:

        async def stored() -> bool:
            return await migrated_store.run(migrated_store.store.count_comparisons, "m1") == len(
                pairs
            )

        await eventually(stored, 30, "the replayed pairs in the store")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await bus.stop()


async def test_the_memory_bus_has_no_dlq_to_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "shadowjudge.yaml"
    config.write_text("bus: memory://\n")
    assert await cli("-c", str(config), "dlq", "list") == 2
    assert "inside the `shadowjudge run` process" in capsys.readouterr().err


async def test_an_unreachable_broker_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "shadowjudge.yaml"
    config.write_text('bus: "kafka://127.0.0.1:9"\n')
    assert await cli("-c", str(config), "dlq", "list") == 2
    assert capsys.readouterr().err == (
        "shadowjudge: bus.url: kafka://127.0.0.1:9: no Kafka broker answers at 127.0.0.1:9"
        " (connection refused): start it, or fix bus.url\n"
    )
