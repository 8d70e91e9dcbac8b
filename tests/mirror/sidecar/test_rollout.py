"""Staged rollout through a real sidecar: a share of the live calls answered by a candidate arm,
translated back for the app's own SDK, sticky per caller, with the primary serving whatever
the candidate cannot; and the served call captured for the judge.

The app's calls go through the official SDKs. The primaries are one OpenAI and one Anthropic
fake; the candidates are fakes of their own (so what each side was asked is visible), one of
them scripted by model name to fail (500, 529) or to be slow, and a provider on a closed port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from mirror.config import CaptureSettings, ProviderSettings, SidecarSettings
from mirror.events import Api, CapturedCall, ErrorKind, FinishReason, ProviderKind
from mirror.migrations import MigrationSettings
from mirror.rollout import WeightChange, Weights, sticky_point
from mirror.sidecar.rollout import RolloutRouter
from simulation.providers import (
    AnthropicFake,
    FakeReply,
    OpenAIFake,
    anthropic_app,
    openai_app,
    serve,
)
from tests.broker import free_port
from tests.sidecar import RunningSidecar, run_sidecar

APP_OPENAI_KEY = "sk-app-openai-1111"
APP_ANTHROPIC_KEY = "sk-ant-app-2222"
CANDIDATE_ANT_KEY = "sk-ant-candidate-3333"
CANDIDATE_OAI_KEY = "sk-candidate-openai-4444"
FIRST_BYTE_TIMEOUT_S = 2.0
SERVED_BY = "x-shadowjudge-served-by"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
QUESTION = [{"role": "user", "content": "What is the capital of Norway?"}]
TOOL_QUESTION = [{"role": "user", "content": "Weather in Oslo? use get_weather"}]


async def scripted(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply | None:
    """Candidates misbehave by the model they are asked for."""
    model = str(body.get("model"))
    if model.endswith("-500"):
        return FakeReply(status=500)
    if model.endswith("-529"):
        return FakeReply(status=529)
    if model.endswith("-slow"):
        await asyncio.sleep(FIRST_BYTE_TIMEOUT_S * 2)
    return None


def migration(name: str, model: str, arm: dict[str, Any], **rollout: Any) -> MigrationSettings:
    api = "anthropic.messages" if model.startswith("claude") else "openai.chat_completions"
    return MigrationSettings.model_validate(
        {
            "name": name,
            "match": {"api": [api], "model": [model]},
            "arms": [{"name": "cand", **arm}],
            "rollout": {"weight": 1.0, **rollout},
        }
    )


def to_claude(model: str = "claude-sonnet-4-6", provider: str = "cand-ant") -> dict[str, Any]:
    return {"provider": provider, "model": model}


MIGRATIONS = [
    migration("chat-to-claude", "gpt-4o", to_claude()),
    migration("messages-to-gpt", "claude-haiku-4-5", {"provider": "cand-oai", "model": "gpt-4.1"}),
    migration("chat-500", "gpt-fail-500", to_claude("claude-500")),
    migration("chat-529", "gpt-fail-529", to_claude("claude-529")),
    migration("chat-slow", "gpt-slow", to_claude("claude-slow")),
    migration("chat-closed", "gpt-closed", to_claude(provider="closed")),
    migration("chat-no-key", "gpt-no-key", to_claude(provider="no-key")),
    migration("share", "gpt-share", to_claude(), weight=0.3, sticky="header:x-user"),
    migration("dynamic", "gpt-dynamic", to_claude(), weight=0.0),
    migration("same-provider", "gpt-same", {"provider": "openai", "model": "gpt-4.1-mini"}),
]


@dataclass
class Env:
    primary_oai: OpenAIFake
    primary_ant: AnthropicFake
    cand_ant: AnthropicFake
    cand_oai: OpenAIFake
    sidecar: RunningSidecar
    weights: Weights

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.sidecar.url}/v1", api_key=APP_OPENAI_KEY, max_retries=0
        )

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.sidecar.url, api_key=APP_ANTHROPIC_KEY, max_retries=0
        )

    def fallbacks(self, migration: str, reason: str) -> float:
        labels = {"migration": migration, "arm": "cand", "reason": reason}
        return self.sidecar.metric("shadowjudge_rollout_fallbacks_total", **labels)

    def served(self, migration: str) -> float:
        labels = {"migration": migration, "arm": "cand"}
        return self.sidecar.metric("shadowjudge_rollout_served_total", **labels)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    keys = pytest.MonkeyPatch()
    keys.setenv("SJ_TEST_CANDIDATE_ANT", CANDIDATE_ANT_KEY)
    keys.setenv("SJ_TEST_CANDIDATE_OAI", CANDIDATE_OAI_KEY)
    keys.delenv("SJ_TEST_NEVER_SET", raising=False)
    primary_oai, primary_ant = openai_app(), anthropic_app()
    cand_ant = anthropic_app(responder=scripted, api_key=CANDIDATE_ANT_KEY)
    cand_oai = openai_app(api_key=CANDIDATE_OAI_KEY)
    weights = Weights()
    with (
        serve(primary_oai) as po,
        serve(primary_ant) as pa,
        serve(cand_ant) as ca,
        serve(cand_oai) as co,
    ):
        providers = {
            "openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=po.url),
            "anthropic": ProviderSettings(kind=ProviderKind.ANTHROPIC, base_url=pa.url),
            "cand-ant": ProviderSettings(
                kind=ProviderKind.ANTHROPIC, base_url=ca.url, api_key_env="SJ_TEST_CANDIDATE_ANT"
            ),
            "cand-oai": ProviderSettings(
                kind=ProviderKind.OPENAI, base_url=co.url, api_key_env="SJ_TEST_CANDIDATE_OAI"
            ),
            "closed": ProviderSettings(
                kind=ProviderKind.ANTHROPIC,
                base_url=f"http://127.0.0.1:{free_port()}",
                api_key_env="SJ_TEST_CANDIDATE_ANT",
            ),
            "no-key": ProviderSettings(
                kind=ProviderKind.ANTHROPIC, base_url=ca.url, api_key_env="SJ_TEST_NEVER_SET"
            ),
        }
        settings = SidecarSettings(
            upstream_keepalive_s=2, rollout_first_byte_timeout_s=FIRST_BYTE_TIMEOUT_S
        )
        with run_sidecar(
            providers,
            capture=CaptureSettings(),
            sidecar=settings,
            migrations=MIGRATIONS,
            weights=weights,
        ) as sidecar:
            yield Env(primary_oai, primary_ant, cand_ant, cand_oai, sidecar, weights)
    keys.undo()


def new_calls(env: Env, before: int, count: int = 1) -> list[CapturedCall]:
    env.sidecar.calls(expected=before + count)
    time.sleep(0.05)  # a wrong extra capture would show up here
    return env.sidecar.calls()[before:]


# --- the decision --------------------------------------------------------------------------


def change(migration: str, weight: float, arm: str = "cand") -> WeightChange:
    return WeightChange(migration, arm, weight, 0.0, "test", "", datetime.now(UTC))


def test_the_served_share_and_stickiness_of_the_decision() -> None:
    weights = Weights([change("share", 0.30)])
    keys = [f"user-{i}" for i in range(10_000)]
    first = [weights.serves("share", key) for key in keys]
    share = sum(arm == "cand" for arm in first) / len(keys)
    assert 0.28 <= share <= 0.32
    assert [weights.serves("share", key) for key in keys] == first  # same key, same arm


def test_the_router_reads_the_sticky_key_and_falls_back_to_per_call() -> None:
    provider = ProviderSettings(kind=ProviderKind.ANTHROPIC, base_url="http://x")
    weights = Weights([change("share", 0.30)])
    router = RolloutRouter([MIGRATIONS[7]], {"cand-ant": provider}, CaptureSettings(), weights)
    assert router.live
    body = b'{"model": "gpt-share", "messages": []}'
    chosen = [
        router.choose(Api.OPENAI_CHAT, {"x-user": f"u{i}"}, body) is not None for i in range(10_000)
    ]
    assert 0.28 <= sum(chosen) / len(chosen) <= 0.32
    again = [
        router.choose(Api.OPENAI_CHAT, {"x-user": f"u{i}"}, body) is not None for i in range(10_000)
    ]
    assert again == chosen
    # Without the header each call is decided on its own, at the same rate.
    keyless = [router.choose(Api.OPENAI_CHAT, {}, body) is not None for _ in range(10_000)]
    assert 0.28 <= sum(keyless) / len(keyless) <= 0.32
    # Other models, other APIs, bodies that are not JSON: never served.
    assert router.choose(Api.OPENAI_CHAT, {"x-user": "u"}, b'{"model": "gpt-5"}') is None
    assert router.choose(Api.OPENAI_RESPONSES, {"x-user": "u"}, body) is None
    assert router.choose(Api.OPENAI_CHAT, {"x-user": "u"}, b"not json") is None
    weights.apply(change("share", 0.0))
    assert not router.live


def test_a_few_hundred_calls_through_the_sidecar_stick_to_their_side(env: Env) -> None:
    users = [f"user-{i}" for i in range(60)]
    predicted = {u for u in users if sticky_point("share", f"header:x-user={u}") < 0.3}
    sides: dict[str, set[bool]] = {u: set() for u in users}
    with env.openai() as client:
        for _ in range(5):
            for user in users:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-share",
                    messages=QUESTION,  # type: ignore[arg-type]
                    extra_headers={"x-user": user},
                )
                served = raw.headers.get(SERVED_BY) == "share/cand"
                assert raw.parse().model == ("claude-sonnet-4-6" if served else "gpt-share")
                sides[user].add(served)
    assert all(len(seen) == 1 for seen in sides.values())  # one side per user
    assert {u for u, seen in sides.items() if True in seen} == predicted
    assert 0.1 < len(predicted) / len(users) < 0.5
    assert env.served("share") == 5 * len(predicted)


def test_a_weight_change_takes_effect_at_the_next_call(env: Env) -> None:
    def served() -> bool:
        with env.openai() as client:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-dynamic",
                messages=QUESTION,  # type: ignore[arg-type]
            )
            return raw.headers.get(SERVED_BY) == "dynamic/cand"

    assert not served()  # the configured start weight: 0
    env.weights.apply(change("dynamic", 1.0))
    assert served()
    env.weights.apply(change("dynamic", 0.0))
    assert not served()


# --- translated both ways, through the SDKs --------------------------------------------------


def test_an_openai_app_served_by_anthropic(env: Env) -> None:
    primary_before = len(env.primary_oai.requests)
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=QUESTION,  # type: ignore[arg-type]
        )
        completion = raw.parse()
        assert raw.headers[SERVED_BY] == "chat-to-claude/cand"
        assert completion.model == "claude-sonnet-4-6"
        assert completion.choices[0].message.content.startswith("Echo: What is the capital")  # type: ignore[union-attr]
        assert completion.choices[0].finish_reason == "stop"
        asked = env.cand_ant.requests[-1]
        assert asked.json()["model"] == "claude-sonnet-4-6"
        assert asked.header("x-api-key") == CANDIDATE_ANT_KEY  # the candidate's own key
        assert APP_OPENAI_KEY not in str(asked.headers)
        assert asked.header("accept-encoding") == "identity"

        tools = client.chat.completions.create(
            model="gpt-4o",
            messages=TOOL_QUESTION,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
        )
        call = tools.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert tools.choices[0].finish_reason == "tool_calls"
        assert tools.model == "claude-sonnet-4-6"

        chunks = list(
            client.chat.completions.create(
                model="gpt-4o",
                messages=QUESTION,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == completion.choices[0].message.content
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        assert {c.model for c in chunks} == {"claude-sonnet-4-6"}

        with client.chat.completions.stream(
            model="gpt-4o",
            messages=TOOL_QUESTION,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
        ) as stream:
            final = stream.get_final_completion()
        streamed_call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert streamed_call.function.name == "get_weather"
        assert streamed_call.function.arguments == call.function.arguments  # type: ignore[union-attr]
    assert len(env.primary_oai.requests) == primary_before  # the primary was never asked


def test_an_anthropic_app_served_by_openai(env: Env) -> None:
    before = len(env.cand_oai.requests)
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=300,
            messages=QUESTION,  # type: ignore[arg-type]
        )
        message = raw.parse()
        assert raw.headers[SERVED_BY] == "messages-to-gpt/cand"
        assert message.model == "gpt-4.1"
        assert message.content[0].text.startswith("Echo: What is the capital")  # type: ignore[union-attr]
        assert message.stop_reason == "end_turn"
        asked = env.cand_oai.requests[-1]
        assert asked.header("authorization") == f"Bearer {CANDIDATE_OAI_KEY}"
        assert asked.json()["max_completion_tokens"] == 300

        tools = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=300,
            messages=TOOL_QUESTION,  # type: ignore[arg-type]
            tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
        )
        assert tools.stop_reason == "tool_use"
        use = [block for block in tools.content if block.type == "tool_use"][0]
        assert use.name == "get_weather" and isinstance(use.input, dict)

        events = list(
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=300,
                messages=QUESTION,  # type: ignore[arg-type]
                stream=True,
            )
        )
        assert events[0].type == "message_start" and events[-1].type == "message_stop"
        text = "".join(
            e.delta.text  # type: ignore[union-attr]
            for e in events
            if e.type == "content_block_delta" and e.delta.type == "text_delta"
        )
        assert text == message.content[0].text  # type: ignore[union-attr]

        with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=300,
            messages=TOOL_QUESTION,  # type: ignore[arg-type]
            tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "tool_use" and final.model == "gpt-4.1"
        assert [b for b in final.content if b.type == "tool_use"][0].input == use.input
    assert len(env.cand_oai.requests) == before + 4


def test_a_same_provider_arm_gets_the_apps_own_key(env: Env) -> None:
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-same",
            messages=QUESTION,  # type: ignore[arg-type]
        )
    assert raw.headers[SERVED_BY] == "same-provider/cand"
    assert raw.parse().model == "gpt-4.1-mini"
    asked = env.primary_oai.requests[-1]
    assert asked.json()["model"] == "gpt-4.1-mini"
    assert asked.header("authorization") == f"Bearer {APP_OPENAI_KEY}"


# --- fallback ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "migration_name", "reason"),
    [
        ("gpt-fail-500", "chat-500", "error_status"),
        ("gpt-fail-529", "chat-529", "error_status"),
        ("gpt-closed", "chat-closed", "unreachable"),
        ("gpt-slow", "chat-slow", "timeout"),
        ("gpt-no-key", "chat-no-key", "no_key"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_primary_serves_what_the_candidate_cannot(
    env: Env, model: str, migration_name: str, reason: str, stream: bool
) -> None:
    before = env.fallbacks(migration_name, reason)
    with env.openai() as client:
        started = time.perf_counter()
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model=model,
                    messages=QUESTION,  # type: ignore[arg-type]
                    stream=True,
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            models = {c.model for c in chunks}
        else:
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=QUESTION,  # type: ignore[arg-type]
            )
            assert raw.status_code == 200 and SERVED_BY not in raw.headers
            completion = raw.parse()
            text, models = completion.choices[0].message.content or "", {completion.model}
        elapsed = time.perf_counter() - started
    assert models == {model}  # the primary's answer
    assert text.startswith("Echo: What is the capital")
    assert env.fallbacks(migration_name, reason) == before + 1
    assert env.primary_oai.requests[-1].json()["model"] == model
    if reason == "timeout":
        assert FIRST_BYTE_TIMEOUT_S <= elapsed < FIRST_BYTE_TIMEOUT_S * 3
    assert env.served(migration_name) == 0


def test_an_untranslatable_request_is_served_by_the_primary(env: Env) -> None:
    before = env.fallbacks("chat-to-claude", "untranslatable")
    asked_before = len(env.cand_ant.requests)
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=QUESTION,  # type: ignore[arg-type]
            n=2,
        )
    assert raw.status_code == 200 and SERVED_BY not in raw.headers
    completion = raw.parse()
    assert completion.model == "gpt-4o"
    assert env.primary_oai.requests[-1].json()["n"] == 2
    assert env.fallbacks("chat-to-claude", "untranslatable") == before + 1
    assert len(env.cand_ant.requests) == asked_before  # never asked


def test_the_metrics_page_says_why(env: Env) -> None:
    # Its own calls: under xdist this test may run in a worker that ran no other of this module.
    with env.openai() as client:
        for model in ("gpt-fail-529", "gpt-closed", "gpt-4o"):
            client.chat.completions.create(model=model, messages=QUESTION)  # type: ignore[arg-type]
    text = httpx2.get(f"{env.sidecar.url}/metrics").text
    assert 'shadowjudge_rollout_fallbacks_total{arm="cand",migration="chat-529",' in text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("shadowjudge_rollout_fallbacks_total")
        and 'migration="chat-closed"' in line
        and 'reason="unreachable"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert 'shadowjudge_rollout_served_total{arm="cand",migration="chat-to-claude"}' in text


def test_a_candidate_that_breaks_after_its_answer_began_cuts_the_app(env: Env) -> None:
    before = env.fallbacks("same-provider", "broken")
    calls_before = len(env.sidecar.calls())
    with env.openai() as client, pytest.raises(openai.APIConnectionError):
        stream = client.chat.completions.create(
            model="gpt-same",
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"x-fake-stream-error": "cut"},  # the same provider gets them
        )
        for _ in stream:
            pass
    assert env.fallbacks("same-provider", "broken") == before + 1
    (call,) = new_calls(env, calls_before)
    assert call.served_by is not None and call.served_by.answer is not None
    error = call.served_by.answer.error
    assert error is not None and error.kind is ErrorKind.INCOMPLETE


# --- capture -----------------------------------------------------------------------------------


def test_a_served_call_is_captured_with_the_candidates_answer(env: Env) -> None:
    before = len(env.sidecar.calls())
    with env.openai() as client:
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=TOOL_QUESTION,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
            extra_headers={"x-shadow-user": "u-1"},
        )
    (call,) = new_calls(env, before)
    served = call.served_by
    assert served is not None
    assert (served.migration, served.arm, served.provider) == ("chat-to-claude", "cand", "cand-ant")
    assert served.model == "claude-sonnet-4-6"
    answer = served.answer
    assert answer is not None and answer.ok and answer.provider == "cand-ant"
    assert answer.output is not None and answer.output.finish_reason is FinishReason.TOOL_CALLS
    tool_call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert answer.output.tool_calls[0].name == tool_call.function.name  # type: ignore[union-attr]
    assert answer.output.tool_calls[0].id == tool_call.id
    assert call.api is Api.OPENAI_CHAT and call.request is not None
    assert call.request["model"] == "gpt-4o" and call.segment == {"user": "u-1"}
    # The primary was not asked, and says so.
    assert call.primary.provider == "openai" and call.primary.model == "gpt-4o"
    assert call.primary.error is not None and call.primary.error.kind is ErrorKind.SKIPPED
    # No key of either side in the event.
    for raw in env.sidecar.raw_records():
        assert CANDIDATE_ANT_KEY.encode() not in raw and APP_OPENAI_KEY.encode() not in raw


def test_a_streamed_served_call_is_captured_as_the_candidate_streamed_it(env: Env) -> None:
    before = len(env.sidecar.calls())
    with env.anthropic() as client:
        with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=300,
            messages=QUESTION,  # type: ignore[arg-type]
        ) as stream:
            message = stream.get_final_message()
    (call,) = new_calls(env, before)
    assert call.served_by is not None and call.served_by.answer is not None
    answer = call.served_by.answer
    assert answer.stream and answer.ttft_ms is not None
    assert answer.output is not None
    assert answer.output.text == message.content[0].text  # type: ignore[union-attr]
    assert answer.usage is not None and answer.usage.output_tokens == message.usage.output_tokens


def test_a_fallen_back_call_is_captured_as_an_ordinary_one(env: Env) -> None:
    before = len(env.sidecar.calls())
    with env.openai() as client:
        client.chat.completions.create(
            model="gpt-fail-500",
            messages=QUESTION,  # type: ignore[arg-type]
        )
    (call,) = new_calls(env, before)
    assert call.served_by is None and call.primary.ok and call.primary.model == "gpt-fail-500"
