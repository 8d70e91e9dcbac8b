"""Poison and oversized messages in each topic, among valid ones, on the real broker.

Every valid message is processed, every poison one is in the DLQ with its reason, kind and
source, nothing oversized is refused or stops a worker, and both groups commit to the end of
their topics: every record has an outcome.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator

import pytest

from judge.config import JudgeSettings
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from judge.worker import JudgeWorker
from mirror.bus.dlq import parse_dead_letter
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings, ProviderKind, ProviderSettings
from mirror.events import ShadowPair, dump_event
from mirror.migrations import MigrationSettings, RunnerSettings
from mirror.pricing import PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.worker import Runner
from simulation.providers import Served, openai_app, serve
from tests.broker import TansuBroker
from tests.faults.harness import (
    captured,
    committed_and_ends,
    eventually,
    produce_raw,
    read_all,
    unique_topics,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

VALID = 20
MIB = 1 << 20


@pytest.fixture(scope="module")
def fake() -> Iterator[Served]:
    with serve(openai_app()) as served:
        yield served


async def test_poison_and_oversized_in_both_topics(
    kafka: TansuBroker, fake: Served, migrated_store: AsyncStore
) -> None:
    os.environ["SJ_FAULTS_KEY"] = "sk-faults"
    topics = unique_topics()
    settings = BusSettings(url=kafka.url, topics=topics, partitions=2)
    bus = KafkaBus(settings)
    await bus.start()

    # shadow.calls: valid calls, one whose call alone passes 1 MiB, and five kinds of poison.
    big = captured(999, request_chars=600_000, answer_chars=700_000)
    assert len(dump_event(big)) > MIB
    calls = [captured(i) for i in range(VALID)]
    poison_calls = [
        b"",
        b"not json at all",
        b"[1, 2, 3]",
        dump_event(captured(1000)).replace(b'"schema_version":1', b'"schema_version":9'),
        b"\x00" * (3 * MIB),  # garbage larger than the bus takes: its dead letter is cut
    ]
    values: list[tuple[bytes | None, bytes]] = [(c.call_id.encode(), dump_event(c)) for c in calls]
    values.insert(5, (big.call_id.encode(), dump_event(big)))
    for i, poison in enumerate(poison_calls):
        values.insert(3 * i + 1, (None, poison))
    await produce_raw(kafka.bootstrap, topics.calls, values)

    providers = {
        "openai": ProviderSettings(
            kind=ProviderKind.OPENAI, base_url=fake.url, api_key_env="SJ_FAULTS_KEY"
        )
    }
    migration = MigrationSettings.model_validate(
        {"name": "faults", "arms": [{"name": "mini", "provider": "openai", "model": "gpt-4o"}]}
    )
    runner_settings = RunnerSettings(group=f"runner-{topics.calls}", max_in_flight=8)
    runner = Runner(
        bus=bus,
        topics=topics,
        migrations=[migration],
        providers=providers,
        prices=PriceTable(),
        settings=runner_settings,
        caller=ArmCaller(max_attempts=1),
    )
    stop_runner = asyncio.Event()
    running = asyncio.create_task(runner.run(stop_runner))

    async def runner_done() -> bool:
        assert not running.done(), running  # no process exits
        committed, ends = await committed_and_ends(
            kafka.bootstrap, runner_settings.group, topics.calls
        )
        return bool(ends) and committed == ends

    await eventually(runner_done, 60, "the runner to commit every call")

    # shadow.pairs: the runner's pairs, plus three kinds of poison of the judge's own.
    poison_pairs = [b"{}", b"\xff\xfe not utf-8", b"{" * (5 * MIB)]
    await produce_raw(kafka.bootstrap, topics.pairs, [(None, p) for p in poison_pairs])
    group = f"judge-{topics.pairs}"
    worker = JudgeWorker(
        bus=bus,
        topics=topics,
        scorer=Scorer(JudgeSettings(), {}, PriceTable(), None),
        store=migrated_store,
        batch_rows=50,
        batch_seconds=0.1,
        group=group,
    )
    stop_judge = asyncio.Event()
    judging = asyncio.create_task(worker.run(stop_judge))

    async def judge_done() -> bool:
        assert not judging.done(), judging
        committed, ends = await committed_and_ends(kafka.bootstrap, group, topics.pairs)
        return bool(ends) and committed == ends

    await eventually(judge_done, 60, "the judge to commit every pair")
    stop_runner.set()
    stop_judge.set()
    await asyncio.wait_for(asyncio.gather(running, judging), 30)
    await runner.close()

    pairs = [r for r in await read_all(kafka.bootstrap, topics.pairs) if r.value.startswith(b'{"')]
    assert all(len(r.value) <= MIB for r in pairs if r.key is not None)  # the runner's, all fit
    assert await migrated_store.run(migrated_store.store.count_comparisons, "faults") == VALID + 1
    rows = await migrated_store.run(_reasons, migrated_store)
    assert rows[big.call_id][0] == "not_judged"
    assert "bus message limit" in rows[big.call_id][1]
    assert sum("bus message limit" in reason for _, reason in rows.values()) == 1

    letters = [parse_dead_letter(r) for r in await read_all(kafka.bootstrap, topics.dlq)]
    by_source = Counter(letter.source_topic for letter in letters)
    assert by_source == {topics.calls: len(poison_calls), topics.pairs: len(poison_pairs)}
    assert all(letter.kind == "poison" and letter.reason for letter in letters)
    truncated = [letter for letter in letters if letter.truncated]
    assert sorted(letter.original_bytes for letter in truncated) == [3 * MIB, 5 * MIB]
    assert all(len(letter.value) < MIB for letter in letters)
    metric = runner.metrics.registry.get_sample_value
    assert metric("shadowjudge_runner_dead_letters_total", {"kind": "poison"}) == 5
    ok = {"migration": "faults", "arm": "mini", "outcome": "ok"}
    assert metric("shadowjudge_runner_pairs_total", ok) == VALID + 1
    judged = worker.metrics.registry.get_sample_value
    assert judged("shadowjudge_judge_dead_letters_total", {"kind": "poison"}) == 3
    assert judged("shadowjudge_judge_written_total") == VALID + 1
    await bus.stop()
    # The pair the runner cut still parses, and says it was cut.
    cut = [ShadowPair.model_validate_json(r.value) for r in pairs if big.call_id.encode() == r.key]
    assert cut and cut[0].call.truncated.bus


def _reasons(store: AsyncStore) -> dict[str, tuple[str, str]]:
    with store.store._call("read verdicts") as ch:
        rows = ch.query("SELECT call_id, verdict, verdict_reason FROM comparisons").result_rows
    return {call_id: (verdict, reason) for call_id, verdict, reason in rows}
