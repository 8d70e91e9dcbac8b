"""Logs that change under the consumers, and stopping whatever the bus does.

- The broker restarts empty (Tansu keeps its logs in memory) under a runner and a judge that
  had read and committed offsets far into the old logs, and the first calls after it are fewer
  than the old logs held (as in the outage this reproduces: the consumers' offsets lay past
  ~490 new calls, which then waited, unread and unreported). Every call accepted after the
  restart is judged; the consumers notice that what they read is past the new logs' ends, say
  so in the log and the metrics, and start the new logs from the beginning.
- SIGTERM while the topics are gone and commits cannot succeed: the roles still exit within
  the drain deadline.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from mirror.bus.base import Message
from mirror.bus.kafka import KafkaBus
from mirror.bus.retry import deliver
from mirror.config import BusSettings
from mirror.events import dump_event
from simulation.providers import Served, openai_app, serve
from tests.broker import TansuBroker, free_port
from tests.faults.harness import captured, eventually, scrape, start_role, stop_role, unique_topics

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

BEFORE, AFTER, LATER = 150, 30, 120
CONFIG = """
providers:
  openai: {{kind: openai, base_url: "{fake}", api_key_env: SJ_FAULTS_KEY}}
bus:
  url: "{bus}"
  partitions: 2
  topic_check_s: 1
  topics: {{calls: {calls}, pairs: {pairs}, dlq: {dlq}}}
  producer: {{linger_ms: 5, request_timeout_ms: 5000}}
  consumer: {{session_timeout_ms: 6000}}
store: {{url: "chdb://{store}", batch_rows: 50, batch_seconds: 0.1}}
runner: {{metrics_listen: "127.0.0.1:{runner_port}", drain_timeout_s: 5}}
judge: {{metrics_listen: "127.0.0.1:{judge_port}"}}
migrations:
  - name: restart
    arms: [{{name: mini, provider: openai, model: gpt-4o}}]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[Served]:
    with serve(openai_app()) as served:
        yield served


def write_config(path: Path, broker: TansuBroker, fake: Served, **ports: int) -> Path:
    topics = unique_topics()
    config = path / "shadowjudge.yaml"
    config.write_text(
        CONFIG.format(
            fake=fake.url, bus=broker.url, store=path / "store", **ports, **topics.model_dump()
        )
    )
    return config


async def publish_calls(bus: KafkaBus, topic: str, first: int, count: int) -> None:
    calls = [captured(first + i) for i in range(count)]
    messages = [Message(topic, dump_event(c), c.call_id.encode()) for c in calls]
    await deliver(bus, messages)  # retried while the broker is away


async def test_broker_restarted_empty_loses_no_accepted_call(
    own_kafka: TansuBroker, fake: Served, tmp_path: Path
) -> None:
    os.environ["SJ_FAULTS_KEY"] = "sk-faults"
    runner_port, judge_port = free_port(), free_port()
    config = write_config(tmp_path, own_kafka, fake, runner_port=runner_port, judge_port=judge_port)
    settings = BusSettings.model_validate(
        {"url": own_kafka.url, "partitions": 2, "topics": _topics(config)}
    )
    bus = KafkaBus(settings)
    await bus.start()
    runner = await start_role("runner", config, tmp_path / "runner.log")
    judge = await start_role("judge", config, tmp_path / "judge.log")
    try:

        async def judged(n: int) -> bool:
            written = (await asyncio.to_thread(scrape, judge_port)).get(
                "shadowjudge_judge_written_total", -1
            )
            return written >= n

        await publish_calls(bus, settings.topics.calls, 0, BEFORE)
        await eventually(lambda: judged(BEFORE), 90, "the calls before the restart")

        await asyncio.to_thread(own_kafka.restart)
        # The roles' topic checks create the topics again. A write before that would be lost
        # by this broker, which acknowledges writes to a topic it has not created and never
        # serves them; producers of ours hold their sends back once they have seen a failure.
        await eventually(lambda: topics_exist(own_kafka, settings), 30, "the topics again")
        await publish_calls(bus, settings.topics.calls, BEFORE, AFTER)
        await eventually(lambda: judged(BEFORE + AFTER), 90, "the first calls after the restart")
        await publish_calls(bus, settings.topics.calls, BEFORE + AFTER, LATER)
        await eventually(lambda: judged(BEFORE + AFTER + LATER), 90, "every later call")

        runner_samples = await asyncio.to_thread(scrape, runner_port)
        judge_samples = await asyncio.to_thread(scrape, judge_port)
        assert judge_samples["shadowjudge_judge_written_total"] == BEFORE + AFTER + LATER
        # Positions past the new logs' ends are noticed, logged and reset, skipping nothing.
        # Whether a role meets one at all depends on timing: a consumer that rejoins its group
        # after the restart finds no committed offset and starts the new log by the reset
        # policy, with nothing to reset; under load both roles may rejoin, and then none is.
        resets = (
            runner_samples["shadowjudge_runner_offset_resets_total"]
            + judge_samples["shadowjudge_judge_offset_resets_total"]
        )
        logs = (tmp_path / "runner.log").read_text() + (tmp_path / "judge.log").read_text()
        assert logs.count("past the log's end") == resets
        assert runner_samples["shadowjudge_runner_offsets_skipped_total"] == 0
        assert judge_samples["shadowjudge_judge_offsets_skipped_total"] == 0
        assert await stop_role(runner) < 20
        assert await stop_role(judge) < 20
    finally:
        for process in (runner, judge):
            if process.returncode is None:
                process.kill()
                await process.wait()
        await bus.stop()


async def test_sigterm_while_the_topics_are_gone(
    own_kafka: TansuBroker, fake: Served, tmp_path: Path
) -> None:
    os.environ["SJ_FAULTS_KEY"] = "sk-faults"
    runner_port, judge_port = free_port(), free_port()
    config = write_config(tmp_path, own_kafka, fake, runner_port=runner_port, judge_port=judge_port)
    topics = _topics(config)
    bus = KafkaBus(BusSettings.model_validate({"url": own_kafka.url, "topics": topics}))
    await bus.start()
    runner = await start_role("runner", config, tmp_path / "runner.log")
    try:
        await publish_calls(bus, topics["calls"], 0, 50)

        async def replayed() -> bool:
            samples = await asyncio.to_thread(scrape, runner_port)
            return samples.get("shadowjudge_runner_consumed_total", 0) >= 50

        await eventually(replayed, 60, "the runner to consume")
        admin = AIOKafkaAdminClient(bootstrap_servers=own_kafka.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(list(topics.values()))
        finally:
            await admin.close()
        await asyncio.sleep(3)  # commits now fail, or find no partition
        elapsed = await stop_role(runner, timeout_s=40)
        assert elapsed < 5 + 15 + 3  # the drain deadline, the supervisor's margin, exit
    finally:
        if runner.returncode is None:
            runner.kill()
            await runner.wait()
        await bus.stop()
    lines = (tmp_path / "runner.log").read_text().splitlines()
    assert sum("commit" in line and "WARNING" in line for line in lines) < 20, lines[-20:]


async def topics_exist(broker: TansuBroker, settings: BusSettings) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
    except Exception:  # noqa: BLE001 - the broker is still coming back
        return False
    finally:
        await admin.close()
    topics = settings.topics
    return {topics.calls, topics.pairs, topics.dlq} <= existing


def _topics(config: Path) -> dict[str, str]:
    loaded = yaml.safe_load(config.read_text())
    return dict(loaded["bus"]["topics"])
