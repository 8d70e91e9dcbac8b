"""Served calls (staged rollout) in the runner: the app got the candidate's answer, so the runner
asks the primary in the shadow and pairs it with that answer instead of asking the arm again;
the noise arm and the other arms go on as usual, and the judge scores a normal pair.

Calls are captured by a real sidecar serving a rollout (memory bus), through the official SDK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from judge.config import JudgeSettings
from judge.scoring import Scorer
from judge.store.columns import call_row
from mirror.bus.memory import MemoryBus
from mirror.config import ProviderKind, ProviderSettings, TopicSettings
from mirror.events import (
    SHADOW_TRAFFIC_HEADER,
    ArmKind,
    CapturedCall,
    ErrorKind,
    ShadowPair,
    parse_captured_call,
    parse_shadow_pair,
)
from mirror.migrations import MigrationSettings, RunnerSettings
from mirror.pricing import PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.worker import Runner
from simulation.providers import AnthropicFake, OpenAIFake, anthropic_app, openai_app, serve
from tests.sidecar import RunningSidecar, run_sidecar

TOPICS = TopicSettings()
ARMS = [
    {"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"},
    {"name": "mini", "provider": "openai", "model": "gpt-4.1-mini"},
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def migration(**fields: Any) -> MigrationSettings:
    return MigrationSettings.model_validate(
        {
            "name": "m",
            "match": {"model": ["gpt-4o"]},
            "arms": ARMS,
            "noise_rate": 1.0,
            "rollout": {"arm": "claude", "weight": 1.0},
            **fields,
        }
    )


class World:
    def __init__(self, oai: OpenAIFake, ant: AnthropicFake, sidecar: RunningSidecar) -> None:
        self.oai, self.ant, self.sidecar = oai, ant, sidecar
        self.providers: dict[str, ProviderSettings] = {}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    keys = pytest.MonkeyPatch()
    keys.setenv("SJ_TEST_SERVED_OPENAI_KEY", "sk-runner-openai-5678")
    keys.setenv("SJ_TEST_SERVED_ANTHROPIC_KEY", "sk-runner-anthropic-5678")
    oai, ant = openai_app(), anthropic_app()
    with serve(oai) as o, serve(ant) as a:
        providers = {
            "openai": ProviderSettings(
                kind=ProviderKind.OPENAI, base_url=o.url, api_key_env="SJ_TEST_SERVED_OPENAI_KEY"
            ),
            "anthropic": ProviderSettings(
                kind=ProviderKind.ANTHROPIC,
                base_url=a.url,
                api_key_env="SJ_TEST_SERVED_ANTHROPIC_KEY",
            ),
        }
        with run_sidecar(providers, migrations=[migration()]) as sidecar:
            world = World(oai, ant, sidecar)
            world.providers = providers
            yield world
    keys.undo()


def served_call(world: World) -> tuple[bytes, str]:
    """One call through the sidecar, served by the candidate: its record and the app's text."""
    before = len(world.sidecar.raw_records())
    with openai.OpenAI(
        base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
    ) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is the capital of Norway?"},
            ],
        )
    assert raw.headers["x-shadowjudge-served-by"] == "m/claude"
    world.sidecar.calls(expected=before + 1)
    (record,) = world.sidecar.raw_records()[before:]
    return record, raw.parse().choices[0].message.content or ""


async def run_runner(
    world: World, records: list[bytes], migrations: list[MigrationSettings]
) -> tuple[Runner, list[ShadowPair]]:
    bus = MemoryBus()
    await bus.start()
    for value in records:
        await bus.send(TOPICS.calls, value)
    runner = Runner(
        bus=bus,
        topics=TOPICS,
        migrations=migrations,
        providers=world.providers,
        prices=PriceTable(),
        settings=RunnerSettings(),
        caller=ArmCaller(max_attempts=1),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    calls_log = bus.topic(TOPICS.calls)
    for _ in range(500):  # until every record is committed
        if calls_log.committed.get("shadowjudge-runner", 0) >= len(records):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    await runner.close()
    return runner, [parse_shadow_pair(r.value) for r in bus.topic(TOPICS.pairs).log]


async def test_a_served_call_is_paired_with_a_shadow_call_to_the_primary(world: World) -> None:
    record, app_text = await asyncio.to_thread(served_call, world)
    captured: CapturedCall = parse_captured_call(record)
    assert captured.served_by is not None and captured.served_by.answer is not None
    served_answer = captured.served_by.answer
    assert captured.primary.error is not None
    assert captured.primary.error.kind is ErrorKind.SKIPPED  # the primary was not asked
    ant_before, oai_before = len(world.ant.requests), len(world.oai.requests)

    runner, pairs = await run_runner(world, [record], [migration()])

    by_arm = {pair.arm.name: pair for pair in pairs}
    assert set(by_arm) == {"claude", "mini", "noise"}
    # The serving arm is not asked again: its pair carries the answer the app got.
    assert len(world.ant.requests) == ant_before
    claude = by_arm["claude"]
    assert claude.arm.kind is ArmKind.CANDIDATE
    assert claude.result == served_answer
    assert claude.result.output is not None and claude.result.output.text == app_text
    # The primary was asked in the shadow, with the app's request, as were mini and noise.
    asked = list(world.oai.requests)[oai_before:]
    assert len(asked) == 3
    assert all(r.header(SHADOW_TRAFFIC_HEADER) for r in asked)
    models = sorted(r.json()["model"] for r in asked)
    assert models == ["gpt-4.1-mini", "gpt-4o", "gpt-4o"]
    assert any(r.json() == captured.request for r in asked)
    # Every pair of the call compares with that one shadow primary answer.
    primaries = {pair.call.primary for pair in pairs}
    assert len(primaries) == 1
    (primary,) = primaries
    assert primary.ok and primary.provider == "openai" and primary.model == "gpt-4o"
    assert primary.output is not None and primary.output.text.startswith("Echo: What is")
    for pair in pairs:
        served_by = pair.call.served_by
        assert served_by is not None and served_by.arm == "claude" and served_by.answer is None
    served_total = runner.metrics.registry.get_sample_value(
        "shadowjudge_runner_served_total", {"migration": "m"}
    )
    assert served_total == 1

    # The judge scores it as any pair, and the store takes its call.
    row = await Scorer(JudgeSettings(), world.providers, PriceTable(), None).score(claude)
    assert row.primary_model == "gpt-4o" and row.primary_status == 200
    assert row.candidate_provider == "anthropic" and row.candidate_status == 200
    assert call_row(claude.call)


async def test_sampling_still_applies_to_served_calls(world: World) -> None:
    record, _ = await asyncio.to_thread(served_call, world)
    oai_before = len(world.oai.requests)
    _, pairs = await run_runner(world, [record], [migration(sampling={"rate": 0.0})])
    assert pairs == []
    assert len(world.oai.requests) == oai_before  # no shadow call for a call not sampled


async def test_a_served_call_another_migration_samples_is_paired_against_the_primary(
    world: World,
) -> None:
    record, _ = await asyncio.to_thread(served_call, world)
    other = MigrationSettings.model_validate(
        {"name": "other", "match": {"model": ["gpt-4o"]}, "arms": [ARMS[1]]}
    )
    _, pairs = await run_runner(world, [record], [migration(sampling={"rate": 0.0}), other])
    (pair,) = pairs
    assert (pair.migration, pair.arm.name) == ("other", "mini")
    assert pair.call.primary.ok and pair.call.primary.model == "gpt-4o"
    assert pair.result.ok and pair.result.model == "gpt-4.1-mini"
