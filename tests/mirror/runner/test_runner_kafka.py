"""Two runner processes in one consumer group on a real broker; one is SIGKILLed half-way.

Afterwards every (call, arm) the sampling selected has a pair on `shadow.pairs` — duplicates
are allowed (the killed runner's uncommitted work is redone), missing ones are not — and no
pair exists that sampling did not select.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from mirror.bus.base import Record
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings
from mirror.events import (
    Api,
    ArmResult,
    CapturedCall,
    Output,
    dump_event,
    parse_shadow_pair,
)
from mirror.migrations import MigrationSettings
from mirror.sampling import arm_salt, sampling_key, selected
from simulation.providers import openai_app, serve
from tests.broker import TansuBroker

CALLS = 2000
CONFIG = """
providers:
  openai: {{kind: openai, base_url: "{fake}", api_key_env: SJ_RUNNER_KEY}}
bus: {bus}
runner:
  max_in_flight: 16
  limits: {{openai: {{concurrency: 4}}}}
  metrics_listen: null
migrations:
  - name: kill-test
    sampling: {{rate: 0.5}}
    noise_rate: 0.3
    arms:
      - {{name: mini, provider: openai, model: gpt-4o-mini}}
"""


def captured(i: int) -> CapturedCall:
    return CapturedCall(
        api=Api.OPENAI_CHAT,
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": f"question {i}"}]},
        primary=ArmResult(
            provider="openai",
            model="gpt-4o",
            status_code=200,
            latency_ms=10.0,
            output=Output(text=f"answer {i}"),
        ),
    )


def expected_keys(calls: list[CapturedCall], migration: MigrationSettings) -> set[tuple[str, str]]:
    keys = set()
    for call in calls:
        key = sampling_key(call, None)
        if selected(key, salt=migration.name, rate=migration.sampling.rate):
            keys.add((call.call_id, "mini"))
            if selected(key, salt=arm_salt(migration.name, "noise"), rate=migration.noise_rate):
                keys.add((call.call_id, "noise"))
    return keys


async def read_pairs(
    bus: KafkaBus, topic: str, into: set[tuple[str, str]], want: int, timeout_s: float
) -> None:
    consumer = bus.consumer([topic], group=f"reader-{time.monotonic_ns()}")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while len(into) < want and time.monotonic() < deadline:
            records: list[Record] = await consumer.getmany(timeout_ms=500, max_records=1000)
            for record in records:
                pair = parse_shadow_pair(record.value)
                assert pair.result.ok, pair.result.error
                into.add((pair.call.call_id, pair.arm.name))
    finally:
        await consumer.stop()


async def test_sigkill_one_of_two_runners(own_kafka: TansuBroker, tmp_path: Path) -> None:
    settings = BusSettings(url=own_kafka.url, partitions=6)
    bus = KafkaBus(settings)
    await bus.start()
    calls = [captured(i) for i in range(CALLS)]
    migration = MigrationSettings.model_validate(
        {
            "name": "kill-test",
            "sampling": {"rate": 0.5},
            "noise_rate": 0.3,
            "arms": [{"name": "mini", "provider": "openai", "model": "gpt-4o-mini"}],
        }
    )
    want = expected_keys(calls, migration)
    deliveries = [
        await bus.send(settings.topics.calls, dump_event(c), key=c.call_id.encode()) for c in calls
    ]
    await asyncio.gather(*deliveries)

    fake = openai_app(latency_ms=40)
    with serve(fake, timeout_keep_alive=75) as upstream:
        config = tmp_path / "shadowjudge.yaml"
        config.write_text(CONFIG.format(fake=upstream.url, bus=own_kafka.url))
        env = {**os.environ, "SJ_RUNNER_KEY": "sk-runner"}
        command = [
            "-m",
            "dashboards.command",
            "-c",
            str(config),
            "--log-level",
            "WARNING",
            "runner",
        ]
        runners = [
            await asyncio.create_subprocess_exec(sys.executable, *command, env=env)
            for _ in range(2)
        ]
        seen: set[tuple[str, str]] = set()
        try:
            await read_pairs(bus, settings.topics.pairs, seen, len(want) * 2 // 5, 60)
            assert len(seen) < len(want), "too fast to kill half-way; slow the fake down"
            runners[0].send_signal(signal.SIGKILL)
            await asyncio.wait_for(runners[0].wait(), 10)
            await read_pairs(bus, settings.topics.pairs, seen, len(want), 120)
        finally:
            for runner in runners:
                if runner.returncode is None:
                    runner.terminate()
                    await asyncio.wait_for(runner.wait(), 30)
            await bus.stop()
    assert runners[1].returncode == 0  # SIGTERM: drained, committed, exited cleanly
    assert seen == want
    assert 0.45 < len({c for c, _ in want}) / CALLS < 0.55
