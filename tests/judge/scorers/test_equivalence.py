"""The equivalence cascade: cheap tiers, combining orders, parsing, the question, the client.

The LLM judge is reached through the official SDKs against the simulated providers
(`simulation.providers`); end-to-end verdicts through the scorer are in `test_scoring.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from judge.comparison import Tier, Verdict
from judge.config import JudgeSettings
from judge.scorers.equivalence import (
    NO_JUDGE_REASON,
    EquivalenceCascade,
    VerdictCache,
    combine_orders,
    exact_match,
    json_match,
    normalise_text,
    tool_match,
    unusable_reason,
)
from judge.scorers.pairwise import (
    MAX_PROMPT_CHARS,
    JudgeCallError,
    OrderVerdict,
    PairwiseJudge,
    Question,
    extract_question,
    extract_user,
    parse_judge_answer,
    render_answer,
)
from mirror.answers.bodies import parse_json_text
from mirror.config import ProviderSettings
from mirror.errors import ConfigError
from mirror.events import (
    SHADOW_TRAFFIC_HEADER,
    Api,
    ArmResult,
    CapturedCall,
    EmbeddingSummary,
    ErrorInfo,
    ErrorKind,
    Output,
    ProviderKind,
    ToolCall,
)
from simulation.demo.models import section
from simulation.providers import FakeReply, Served, anthropic_app, openai_app, serve
from tests.demo_mix import demo_pairs

QUESTION = Question(system="Answer briefly.", user="What is the capital of France?")


def out(text: str = "", tools: tuple[tuple[str, str], ...] = ()) -> Output:
    return Output(
        text=text,
        tool_calls=tuple(ToolCall(name=n, arguments=a) for n, a in tools),
        parsed_json=parse_json_text(text),
    )


def arm(output: Output | None = None, **fields: Any) -> ArmResult:
    values: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4.1",
        "status_code": 200,
        "latency_ms": 100.0,
        "output": output,
        **fields,
    }
    return ArmResult(**values)


def call_with(primary: ArmResult, request: dict[str, Any] | None = None) -> CapturedCall:
    body = request or {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Capital?"}]}
    return CapturedCall(api=Api.OPENAI_CHAT, request=body, primary=primary)


# --- the cheap tiers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Paris.", "paris"),
        ("The answer is  Paris!\n", "the answer is paris"),
        ("Ｐａｒｉｓ", "Paris"),  # NFKC folds full-width letters
        ("STRASSE", "straße"),  # case folding, not lower()
        ("café", "cafe\u0301"),  # composed and decomposed é
    ],
)
def test_normalised_texts_match(a: str, b: str) -> None:
    assert normalise_text(a) == normalise_text(b)
    assert exact_match(out(a), out(b))


def test_different_words_or_inner_punctuation_do_not_match() -> None:
    assert not exact_match(out("Paris"), out("Lyon"))
    assert not exact_match(out("3.5"), out("35"))
    assert not exact_match(out("Yes, it is."), out("No, it is."))


def test_exact_match_needs_equal_tool_calls() -> None:
    weather = (("get_weather", '{"city": "Paris"}'),)
    assert exact_match(out("", weather), out("", (("get_weather", '{ "city":"Paris" }'),)))
    assert not exact_match(out("", weather), out("", (("get_weather", '{"city": "Lyon"}'),)))
    assert not exact_match(out("", weather), out(""))


def test_the_same_calls_with_a_preamble_are_the_same_answer() -> None:
    lookup = (("lookup_order", '{"order_id": "NW-48213"}'),)
    spaced = (("lookup_order", '{ "order_id" : "NW-48213" }'),)
    for preamble in ("I'll look that up for you.", "Let me check. One moment!", ""):
        assert tool_match(out("", lookup), out(preamble, spaced)), preamble
        assert tool_match(out(preamble, lookup), out("", spaced)), preamble
    # other arguments, no calls on one side, or an answer written beside the call: not this tier
    assert not tool_match(out("", lookup), out("Sure.", (("lookup_order", '{"order_id": "1"}'),)))
    assert not tool_match(out(""), out("I'll look that up."))
    said = "Your order NW-48213 left our warehouse on Monday. It should arrive on Thursday. " * 2
    assert not tool_match(out("", lookup), out(said, lookup))
    parallel = (("a", "{}"), ("b", '{"x": 1}'))
    assert tool_match(out("", parallel), out("Checking both.", tuple(reversed(parallel))))


def test_json_tier_ignores_key_order_and_number_spelling_but_not_booleans() -> None:
    assert json_match(out('{"a": 1, "b": [1, 2]}'), out('```json\n{"b": [1.0, 2], "a": 1}\n```'))
    assert not json_match(out('{"ok": true}'), out('{"ok": 1}'))
    assert not json_match(out('{"a": 1}'), out("a is 1"))


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (arm(error=ErrorInfo(kind=ErrorKind.SKIPPED, message="spend cap")), "skipped: spend cap"),
        (arm(status_code=500, error=ErrorInfo(kind=ErrorKind.HTTP, message="boom")), "failed"),
        (arm(out("x"), status_code=None), "no answer"),
        (arm(out("x"), truncated=True), "truncated"),
        (arm(None), "no output"),
        (arm(Output(embeddings=EmbeddingSummary(count=1, dimensions=3))), "embeddings"),
    ],
)
def test_unusable_sides_are_not_judged(result: ArmResult, reason: str) -> None:
    found = unusable_reason(result, "candidate")
    assert found is not None and reason in found
    cascade = EquivalenceCascade(None, version="v", cache_size=10)
    decided = cascade.decide_cheap(call_with(arm(out("Paris"))), result)
    assert decided is not None
    assert (decided.verdict, decided.tier) == (Verdict.NOT_JUDGED, Tier.NONE)
    assert reason in decided.reason
    flipped = cascade.decide_cheap(call_with(result), arm(out("Paris")))
    assert flipped is not None and flipped.verdict is Verdict.NOT_JUDGED
    assert flipped.reason.startswith("primary") or "embeddings" in flipped.reason


async def test_without_a_judge_undecided_pairs_are_not_judged() -> None:
    cascade = EquivalenceCascade(None, version="v", cache_size=10)
    decided = await cascade.decide(call_with(arm(out("Paris"))), arm(out("It is Paris")))
    assert (decided.verdict, decided.tier, decided.reason) == (
        Verdict.NOT_JUDGED,
        Tier.NONE,
        NO_JUDGE_REASON,
    )
    exact = await cascade.decide(call_with(arm(out("Paris"))), arm(out("paris.")))
    assert (exact.verdict, exact.tier) == (Verdict.EQUIVALENT, Tier.EXACT)


# --- combining the two orders ------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary_first", "candidate_first", "verdict", "agree"),
    [
        ("same", "same", Verdict.EQUIVALENT, True),
        ("B", "A", Verdict.CANDIDATE_BETTER, True),
        ("A", "B", Verdict.CANDIDATE_WORSE, True),
        ("different", "different", Verdict.DIFFERENT, True),
        ("A", "A", Verdict.DIFFERENT, False),  # position bias: the first answer, always
        ("B", "B", Verdict.DIFFERENT, False),
        ("same", "A", Verdict.DIFFERENT, False),
        ("different", "same", Verdict.DIFFERENT, False),
    ],
)
def test_combine_orders(
    primary_first: str, candidate_first: str, verdict: Verdict, agree: bool
) -> None:
    first = parse_judge_answer(f'{{"verdict": "{primary_first}", "reason": "one"}}')
    second = parse_judge_answer(f'{{"verdict": "{candidate_first}", "reason": "two"}}')
    combined = combine_orders(first, second)
    assert (combined.verdict, combined.tier, combined.orders_agree) == (verdict, Tier.LLM, agree)
    assert "one" in combined.reason


# --- parsing the judge's answer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        ('{"verdict": "A", "reason": "more accurate"}', "A", "more accurate"),
        ('```json\n{"verdict": "same", "reason": "both Paris"}\n```', "same", "both Paris"),
        ('Here is my verdict:\n{"verdict": " b ", "reason": "x"}\nThanks.', "B", "x"),
        ('{"verdict": "Different"}', "different", ""),
        ('{"reason": "r", "verdict": "equivalent"}', "same", "r"),
    ],
)
def test_parse_judge_answer(text: str, label: str, reason: str) -> None:
    assert parse_judge_answer(text) == OrderVerdict(label, reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["", "A", "I think A is better.", '{"verdict": "C"}', '{"verdict": 1}', "[1, 2]", "{bad json}"],
)
def test_unparseable_judge_answers_are_errors(text: str) -> None:
    with pytest.raises(JudgeCallError):
        parse_judge_answer(text)


# --- the question and the answers as the judge sees them ----------------------------------


def test_question_from_openai_chat() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "42"},
        ]
    }
    assert extract_question(Api.OPENAI_CHAT, body) == Question(
        "Be brief.\nUse French.", "What is in\n[image]"
    )


def test_question_from_openai_responses() -> None:
    assert extract_question(
        Api.OPENAI_RESPONSES, {"instructions": "Be brief.", "input": "Capital of France?"}
    ) == Question("Be brief.", "Capital of France?")
    items = {
        "input": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": [{"type": "input_text", "text": "Capital?"}]},
            {"type": "function_call_output", "call_id": "c", "output": "{}"},
        ]
    }
    assert extract_question(Api.OPENAI_RESPONSES, items) == Question("Answer in JSON.", "Capital?")


def test_question_from_anthropic_messages_skips_tool_results() -> None:
    body = {
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
        ],
    }
    assert extract_question(Api.ANTHROPIC_MESSAGES, body) == Question(
        "You are terse.", "Weather in Paris?"
    )
    assert extract_question(Api.ANTHROPIC_MESSAGES, None) is None


_CONTENT = st.one_of(
    st.none(),
    st.integers(),
    st.sampled_from(["", "Capital?", "x" * (MAX_PROMPT_CHARS + 5)]),
    st.lists(
        st.one_of(
            st.text(max_size=5),
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "input_text", "tool_result", "image", "file"])},
                optional={"text": st.one_of(st.text(max_size=5), st.integers())},
            ),
        ),
        max_size=3,
    ),
)
_MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "system", "developer", "assistant", "tool", 3]),
            "content": _CONTENT,
        },
    ),
    st.text(max_size=3),
    st.none(),
)
_MESSAGES = st.one_of(st.lists(_MESSAGE, max_size=5), _CONTENT)
_REQUEST = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "messages": _MESSAGES,
            "input": _MESSAGES,
            "system": _CONTENT,
            "instructions": _CONTENT,
        },
    ),
)


@given(api=st.sampled_from(Api), request=_REQUEST)
@example(Api.OPENAI_CHAT, {"messages": [{"role": "user", "content": "x" * (MAX_PROMPT_CHARS + 1)}]})
@example(Api.OPENAI_RESPONSES, {"input": "y" * (MAX_PROMPT_CHARS + 1)})
@example(
    Api.ANTHROPIC_MESSAGES,
    {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
        ]
    },
)
def test_the_user_message_alone_is_the_questions(api: Api, request: dict[str, Any] | None) -> None:
    """`extract_user` (what the scorer reads for every pair) is `extract_question`'s user."""
    question = extract_question(api, request)
    assert extract_user(api, request) == (question.user if question is not None else None)


def test_answers_render_tool_calls_and_refusals_as_text() -> None:
    rendered = render_answer(
        Output(
            text="Let me check.",
            tool_calls=(ToolCall(name="get_weather", arguments='{"city":"Paris"}'),),
        )
    )
    assert rendered == 'Let me check.\n[tool call] get_weather({"city":"Paris"})'
    assert render_answer(Output(refusal="I can't.")) == "[refusal] I can't."
    assert render_answer(Output()) == "(empty answer)"
    assert render_answer(Output(text="x" * 20_000)).endswith("[…cut]")


# --- the cache ----------------------------------------------------------------------------


def test_lru_cache_is_bounded_and_keeps_recent_entries() -> None:
    cache = VerdictCache(2)
    a, b, c = (b"\x01", "v1"), (b"\x02", "v1"), (b"\x03", "v1")
    value = combine_orders(OrderVerdict("same", ""), OrderVerdict("same", ""))
    cache.put(a, value)
    cache.put(b, value)
    assert cache.get(a) is value  # a is now the most recent
    cache.put(c, value)
    assert cache.get(b) is None and cache.get(a) is value and len(cache) == 2
    assert cache.get((b"\x01", "v2")) is None  # same content, other judge version: a miss
    off = VerdictCache(0)
    off.put(a, value)
    assert len(off) == 0


# --- the client against the fake providers ------------------------------------------------


@pytest.fixture
def served_openai() -> Iterator[tuple[Any, Served]]:
    app = openai_app(responder=lambda body, headers: FakeReply(text='{"verdict": "same"}'))
    with serve(app) as served:
        yield app, served


def provider(kind: ProviderKind, served: Served) -> ProviderSettings:
    return ProviderSettings(kind=kind, base_url=served.url, api_key_env="SJ_TEST_JUDGE_KEY")


@pytest.fixture(autouse=True)
def judge_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SJ_TEST_JUDGE_KEY", "sk-judge-test")


async def test_judge_requests_carry_the_shadow_header_and_the_rubric(
    served_openai: tuple[Any, Served],
) -> None:
    app, served = served_openai
    async with PairwiseJudge(
        provider_name="oa", provider=provider(ProviderKind.OPENAI, served), model="gpt-4.1"
    ) as judge:
        first, second = await judge.ask_both(QUESTION, "Paris.", "It is Paris.")
    assert first == second == OrderVerdict("same", "")
    assert len(app.requests) == 2
    for request in app.requests:
        assert request.header(SHADOW_TRAFFIC_HEADER) == "judge"
        assert request.header("authorization") == "Bearer sk-judge-test"
        messages = request.json()["messages"]
        assert "length or verbosity" in messages[0]["content"]
        assert "What is the capital of France?" in messages[1]["content"]
    prompts = sorted(r.json()["messages"][1]["content"] for r in app.requests)
    assert sorted(section(p, "answer_a") for p in prompts) == ["It is Paris.", "Paris."]


@pytest.mark.parametrize(
    ("reply", "latency_ms", "expected"),
    [
        (FakeReply(status=500), 0.0, "HTTP 500"),
        (FakeReply(text="I prefer the first one."), 0.0, "not the rubric's JSON"),
        (FakeReply(text='{"verdict": "maybe"}'), 0.0, "no valid verdict"),
        (FakeReply(text='{"verdict": "same"}'), 2000.0, "timed out"),
    ],
)
@pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.ANTHROPIC])
async def test_judge_failures_are_error_verdicts_never_equivalent(
    kind: ProviderKind, reply: FakeReply, latency_ms: float, expected: str
) -> None:
    make = openai_app if kind is ProviderKind.OPENAI else anthropic_app
    app = make(responder=lambda body, headers: reply, latency_ms=latency_ms)
    with serve(app) as served:
        judge = PairwiseJudge(
            provider_name="j",
            provider=provider(kind, served),
            model="gpt-4.1" if kind is ProviderKind.OPENAI else "claude-sonnet-4-6",
            timeout_s=0.3,
            max_retries=0,
        )
        cascade = EquivalenceCascade(judge, version="v", cache_size=10)
        async with judge:
            decided = await cascade.decide(call_with(arm(out("Paris"))), arm(out("Lyon")))
            assert (decided.verdict, decided.tier) == (Verdict.ERROR, Tier.LLM)
            assert expected in decided.reason
            assert decided.orders_agree is None
            assert len(cascade.cache) == 0  # errors are not cached: the next pair asks again
            await cascade.decide(call_with(arm(out("Paris"))), arm(out("Lyon")))
        # A request the judge gave up on is recorded when the fake's thread reads it, which on
        # a loaded machine can come after the judge's timeout: wait for it before the fake stops.
        for _ in range(500):
            if len(app.requests) >= 4:
                break
            await asyncio.sleep(0.01)
    assert len(app.requests) == 4


async def test_sdk_retries_come_from_settings() -> None:
    app = openai_app(responder=lambda body, headers: FakeReply(status=500))
    with serve(app) as served:
        settings = JudgeSettings(provider="oa", model="gpt-4.1", max_retries=1, timeout_s=5)
        judge = PairwiseJudge.from_settings(settings, {"oa": provider(ProviderKind.OPENAI, served)})
        assert judge is not None
        async with judge:
            with pytest.raises(JudgeCallError, match="HTTP 500"):
                await judge.ask(QUESTION, "a", "b")
    assert len(app.requests) == 2


def test_judge_from_settings_checks_the_provider_and_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oa = ProviderSettings(kind=ProviderKind.OPENAI, base_url="http://127.0.0.1:9", api_key_env="K")
    assert PairwiseJudge.from_settings(JudgeSettings(), {"oa": oa}) is None
    with pytest.raises(ConfigError, match="no provider named 'other'"):
        PairwiseJudge.from_settings(JudgeSettings(provider="other", model="m"), {"oa": oa})
    monkeypatch.delenv("K", raising=False)
    with pytest.raises(ConfigError, match="'K'"):
        PairwiseJudge.from_settings(JudgeSettings(provider="oa", model="m"), {"oa": oa})


def test_the_scorers_shortcut_decides_as_the_cascade() -> None:
    """The scorer, having found both answers usable, asks `decide_usable`: on the demo traffic
    (every tier, errors, the noise arm) it decides as `decide_cheap`, with and without a judge."""
    for judge in (None, object()):
        cascade = EquivalenceCascade(judge, version="v", cache_size=0)  # type: ignore[arg-type]
        usable = 0
        for pair in demo_pairs(400):
            call, result = pair.call, pair.result
            expected = cascade.decide_cheap(call, result)
            if unusable_reason(call.primary, "p") is None and unusable_reason(result, "c") is None:
                assert call.primary.output is not None and result.output is not None
                assert cascade.decide_usable(call.primary.output, result.output) == expected
                usable += 1
        assert 300 < usable < 400


@given(
    st.text(alphabet="aAbB .,!?\t\n\x1c", max_size=12),
    st.text(alphabet="aAbB .,!?\t\n\x1c", max_size=12),
    st.sampled_from(["", " …", "ß", "ǅ"]),
)
def test_the_exact_tier_is_equality_of_the_normalised_texts(a: str, b: str, tail: str) -> None:
    """Whatever shortcut it takes (the first words of ASCII texts), the exact tier says what
    comparing the two whole normalised texts says."""
    primary, candidate = Output(text=a + tail), Output(text=b)
    expected = primary.text == b or normalise_text(primary.text) == normalise_text(b)
    assert exact_match(primary, candidate) is expected
