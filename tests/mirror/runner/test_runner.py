"""The shadow runner in one process: memory bus, fake providers, calls captured by the sidecar.

Calls are made with the official SDKs through a real sidecar, so the runner replays exactly
what an app sends; the runner's own calls go to the fakes, whose recorded requests show what a
candidate was asked.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from mirror.bus.memory import MemoryBus
from mirror.config import ProviderKind, ProviderSettings, TopicSettings
from mirror.events import (
    ArmKind,
    ErrorKind,
    FinishReason,
    ShadowPair,
    dump_event,
    parse_captured_call,
    parse_shadow_pair,
)
from mirror.migrations import MigrationSettings, RunnerSettings
from mirror.pricing import Price, PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.worker import Runner
from mirror.translate.replay import JSON_TOOL
from simulation.providers import (
    AnthropicFake,
    FakeReply,
    FakeUsage,
    OpenAIFake,
    anthropic_app,
    openai_app,
    serve,
)
from tests.sidecar import RunningSidecar, providers_for, run_sidecar

TOPICS = TopicSettings()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class World:
    def __init__(
        self,
        oai: OpenAIFake,
        ant: AnthropicFake,
        oai_url: str,
        ant_url: str,
        sidecar: RunningSidecar,
    ) -> None:
        self.oai, self.ant, self.sidecar = oai, ant, sidecar
        self.providers = {
            "openai": ProviderSettings(
                kind=ProviderKind.OPENAI, base_url=oai_url, api_key_env="SJ_TEST_OPENAI_KEY"
            ),
            "anthropic": ProviderSettings(
                kind=ProviderKind.ANTHROPIC, base_url=ant_url, api_key_env="SJ_TEST_ANTHROPIC_KEY"
            ),
        }


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    os.environ["SJ_TEST_OPENAI_KEY"] = "sk-runner-openai-1234"
    os.environ["SJ_TEST_ANTHROPIC_KEY"] = "sk-runner-anthropic-1234"
    oai, ant = openai_app(), anthropic_app()
    with serve(oai) as o, serve(ant) as a, run_sidecar(providers_for(o.url, a.url)) as sidecar:
        yield World(oai, ant, o.url, a.url, sidecar)


def migration(**fields: Any) -> MigrationSettings:
    return MigrationSettings.model_validate({"name": "m", **fields})


async def run_runner(
    world: World,
    records: list[bytes],
    migrations: list[MigrationSettings],
    prices: PriceTable | None = None,
    in_flight: int = 8,
) -> tuple[Runner, list[ShadowPair], MemoryBus]:
    bus = MemoryBus()
    await bus.start()
    for value in records:
        await bus.send(TOPICS.calls, value)
    runner = Runner(
        bus=bus,
        topics=TOPICS,
        migrations=migrations,
        providers=world.providers,
        prices=prices or PriceTable(),
        settings=RunnerSettings(max_in_flight=in_flight),
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
    pairs = [parse_shadow_pair(r.value) for r in bus.topic(TOPICS.pairs).log]
    return runner, pairs, bus


def capture(world: World, make: Any) -> list[bytes]:
    before = len(world.sidecar.raw_records())
    make()
    world.sidecar.calls(expected=before + 1)
    return world.sidecar.raw_records()[before:]


async def test_openai_call_replayed_to_anthropic_with_tools_and_system(world: World) -> None:
    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            client.chat.completions.create(
                model="gpt-4o",
                tools=[WEATHER],  # type: ignore[list-item]
                messages=[
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Weather in Oslo? use get_weather"},
                ],
            )

    records = await asyncio.to_thread(capture, world, make)
    arms = [{"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"}]
    _, pairs, _ = await run_runner(world, records, [migration(arms=arms, noise_rate=1.0)])
    by_arm = {p.arm.name: p for p in pairs}
    assert set(by_arm) == {"claude", "noise"}
    asked = next(r.json() for r in reversed(world.ant.requests) if r.path == "/v1/messages")
    assert asked["model"] == "claude-sonnet-4-6" and asked["system"] == "You are terse."
    assert asked["tools"][0]["name"] == "get_weather" and asked["max_tokens"] == 4096
    claude = by_arm["claude"].result
    assert claude.ok and claude.output is not None
    assert claude.output.tool_calls[0].name == "get_weather"
    noise = by_arm["noise"]
    assert noise.arm.kind is ArmKind.NOISE and noise.result.model == "gpt-4o"
    assert noise.result.output == pairs[0].call.primary.output or noise.result.ok
    # The runner's own traffic is marked and carries its own key, not the app's.
    runner_request = world.oai.requests[-1]
    assert runner_request.header("x-shadowjudge-shadow") == "runner"
    assert runner_request.header("authorization") == "Bearer sk-runner-openai-1234"


async def test_anthropic_stream_with_tools_replayed_to_openai_streams_too(world: World) -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }

    def make() -> None:
        with (
            anthropic.Anthropic(
                base_url=world.sidecar.url, api_key="sk-app", max_retries=0
            ) as client,
            client.messages.stream(
                model="claude-sonnet-4-6",
                max_tokens=100,
                system="Be kind.",
                tools=[tool],  # type: ignore[list-item]
                messages=[{"role": "user", "content": "Weather in Lima? use get_weather"}],
            ) as stream,
        ):
            stream.get_final_message()

    records = await asyncio.to_thread(capture, world, make)
    arms = [{"name": "gpt", "provider": "openai", "model": "gpt-4o"}]
    _, pairs, _ = await run_runner(world, records, [migration(arms=arms)])
    (pair,) = pairs
    asked = world.oai.requests[-1].json()
    assert asked["messages"][0] == {"role": "system", "content": "Be kind."}
    assert asked["tools"][0]["function"]["name"] == "get_weather"
    assert asked["stream"] is True and asked["stream_options"] == {"include_usage": True}
    assert pair.result.ok and pair.result.stream and pair.result.ttft_ms is not None
    assert pair.result.output is not None
    assert pair.result.output.tool_calls[0].name == "get_weather"
    primary = pair.call.primary.output
    assert primary is not None and primary.tool_calls[0].name == "get_weather"


async def test_skips_are_published_with_their_reason(world: World) -> None:
    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            client.chat.completions.create(
                model="gpt-4o", n=2, messages=[{"role": "user", "content": "two answers"}]
            )

    records = await asyncio.to_thread(capture, world, make)
    arms = [{"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"}]
    runner, pairs, _ = await run_runner(world, records, [migration(arms=arms)])
    (pair,) = pairs
    assert pair.result.error is not None and pair.result.error.kind is ErrorKind.SKIPPED
    assert pair.result.error.message.startswith("untranslatable:")
    assert "n" in pair.result.error.message
    assert (
        runner.metrics.registry.get_sample_value(
            "shadowjudge_runner_skipped_total", {"reason": "untranslatable"}
        )
        == 1
    )


async def test_spend_cap_stops_candidate_calls(world: World) -> None:
    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            for i in range(10):
                client.chat.completions.create(
                    model="gpt-4o",
                    max_tokens=10,
                    messages=[{"role": "user", "content": f"question {i}"}],
                )

    before = len(world.sidecar.raw_records())
    await asyncio.to_thread(make)
    await asyncio.to_thread(world.sidecar.calls, before + 10)
    records = world.sidecar.raw_records()[before:]
    # Each candidate answer costs 1,000,000 output tokens at $1 per million: $1 a call.
    world.oai.responder = lambda body, headers: FakeReply(  # type: ignore[attr-defined]
        text="ok", usage=FakeUsage(input_tokens=0, output_tokens=1_000_000)
    )
    try:
        prices = PriceTable({"priced-model": Price(input=0.0, output=1.0)})
        arms = [{"name": "cheap", "provider": "openai", "model": "priced-model"}]
        runner, pairs, _ = await run_runner(
            world, records, [migration(arms=arms, daily_spend_usd=3.5)], prices, in_flight=1
        )
    finally:
        world.oai.responder = None  # type: ignore[attr-defined]
    answered = [p for p in pairs if p.result.ok]
    skipped = [p for p in pairs if p.result.error and p.result.error.kind is ErrorKind.SKIPPED]
    # One at a time: the estimate (10 output tokens) lets a call start while the priced usage
    # is below the cap, so the fourth call (at $3 spent) goes, the fifth ($4) does not.
    assert len(answered) == 4 and len(skipped) == 6
    assert all(p.result.error.message == "daily spend cap reached" for p in skipped)  # type: ignore[union-attr]
    assert runner.metrics.registry.get_sample_value(
        "shadowjudge_runner_skipped_total", {"reason": "daily spend cap reached"}
    ) == len(skipped)


async def test_poison_message_goes_to_the_dlq_with_its_reason(world: World) -> None:
    arms = [{"name": "gpt", "provider": "openai", "model": "gpt-4o"}]
    runner, pairs, bus = await run_runner(
        world, [b"not json at all", b'{"schema_version": 9}'], [migration(arms=arms)]
    )
    assert pairs == []
    dead = bus.topic(TOPICS.dlq).log
    assert len(dead) == 2 and dead[0].value == b"not json at all"
    reasons = [dict(r.headers)["error"].decode() for r in dead]
    assert reasons[0].startswith("not a CapturedCall")
    assert "schema_version" in reasons[1]
    assert [dict(r.headers)["kind"] for r in dead] == [b"poison", b"poison"]
    assert [dict(r.headers)["source"] for r in dead] == [b"shadow.calls:0:0", b"shadow.calls:0:1"]
    dead_letters = runner.metrics.registry.get_sample_value
    assert dead_letters("shadowjudge_runner_dead_letters_total", {"kind": "poison"}) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_json_mode_and_sampling_replayed_approximately(world: World, stream: bool) -> None:
    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            params: dict[str, Any] = {
                "model": "gpt-4o",
                "response_format": {"type": "json_object"},
                "temperature": 0.3,
                "top_p": 0.9,
                "messages": [{"role": "user", "content": "The ticket as JSON, please."}],
            }
            if stream:
                for _ in client.chat.completions.create(stream=True, **params):
                    pass
            else:
                client.chat.completions.create(**params)

    records = await asyncio.to_thread(capture, world, make)
    arms = [{"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"}]
    _, pairs, _ = await run_runner(world, records, [migration(arms=arms, noise_rate=1.0)])
    by_arm = {p.arm.name: p for p in pairs}
    asked = next(r.json() for r in reversed(world.ant.requests) if r.path == "/v1/messages")
    assert asked["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert [t["name"] for t in asked["tools"]] == [JSON_TOOL]
    assert "temperature" not in asked and "top_p" not in asked
    assert asked.get("stream", False) is stream
    claude = by_arm["claude"].result
    assert claude.ok and claude.output is not None and claude.stream is stream
    # The forced tool's input is the answer: JSON text, no tool call, an answer that ended.
    assert claude.output.tool_calls == ()
    assert isinstance(json.loads(claude.output.text), dict)
    assert claude.output.parsed_json == json.loads(claude.output.text)
    assert claude.output.finish_reason is FinishReason.STOP
    assert claude.approximations == (
        "json_object as forced tool use",
        "temperature not sent",
        "top_p not sent",
    )
    # The noise arm asks the primary's own API: nothing approximated, nothing written.
    noise = by_arm["noise"].result
    assert noise.approximations == ()
    assert "approximations" not in noise.model_dump(mode="json")


async def test_sampling_left_out_by_default_refused_under_refuse(world: World) -> None:
    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            client.chat.completions.create(
                model="gpt-4o", temperature=0.2, messages=[{"role": "user", "content": "hi"}]
            )

    records = await asyncio.to_thread(capture, world, make)
    arms = [
        {"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"},
        {
            "name": "strict",
            "provider": "anthropic",
            "model": "claude-sonnet-4-6",
            "sampling": "refuse",
        },
    ]
    _, pairs, _ = await run_runner(world, records, [migration(arms=arms)])
    by_arm = {p.arm.name: p.result for p in pairs}
    assert by_arm["claude"].ok and by_arm["claude"].approximations == ("temperature not sent",)
    strict = by_arm["strict"]
    assert strict.error is not None and strict.error.kind is ErrorKind.SKIPPED
    assert "sampling policy is 'refuse'" in strict.error.message
    assert strict.approximations == ()


async def test_a_non_strict_schema_is_replayed_as_a_strict_structured_output(world: World) -> None:
    schema = {
        "type": "object",
        "properties": {"intent": {"type": "string", "enum": ["refund", "bug"]}},
        "required": ["intent"],
    }

    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            client.chat.completions.create(
                model="gpt-4o",
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "ticket", "schema": schema},
                },
                messages=[{"role": "user", "content": "Classify: my card was charged twice"}],
            )

    records = await asyncio.to_thread(capture, world, make)
    arms = [{"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"}]
    _, pairs, _ = await run_runner(world, records, [migration(arms=arms)])
    (pair,) = pairs
    asked = next(r.json() for r in reversed(world.ant.requests) if r.path == "/v1/messages")
    sent = asked["output_config"]["format"]
    assert sent == {"type": "json_schema", "schema": {**schema, "additionalProperties": False}}
    assert pair.result.ok and pair.result.output is not None
    assert pair.result.output.parsed_json == {"intent": "refund"}
    assert pair.result.approximations == ("json_schema made strict",)


@pytest.mark.parametrize("arms", [1, 2])
async def test_published_pairs_are_the_bytes_of_their_model(world: World, arms: int) -> None:
    """The runner splices each record's bytes into its pairs (`dump_pair`): what it publishes
    is byte for byte what serialising the pair whole gives, for one arm and for several."""

    def make() -> None:
        with openai.OpenAI(
            base_url=world.sidecar.url + "/v1", api_key="sk-app", max_retries=0
        ) as client:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hauptstadt? «Oslo»"}]
            )

    records = await asyncio.to_thread(capture, world, make)
    candidates = [
        {"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"},
        {"name": "mini", "provider": "openai", "model": "gpt-4o-mini"},
    ][:arms]
    _, pairs, bus = await run_runner(world, records, [migration(arms=candidates, noise_rate=1.0)])
    published = [r.value for r in bus.topic(TOPICS.pairs).log]
    assert len(published) == arms + 1
    (call,) = [parse_captured_call(r) for r in records]
    for raw, pair in zip(published, pairs, strict=True):
        assert pair.call == call
        assert raw == dump_event(pair)
