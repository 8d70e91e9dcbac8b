"""Events cut to fit the bus's message limit: they fit, they still parse, and they say so."""

from __future__ import annotations

import json

import pytest

from judge.scorers.equivalence import unusable_reason
from mirror.events import (
    Api,
    Arm,
    ArmResult,
    CapturedCall,
    Output,
    ShadowPair,
    ToolCall,
    dump_event,
    parse_captured_call,
    parse_shadow_pair,
)
from mirror.fit import CUT_MARK, dump_to_fit

LIMIT = 1 << 20


def big_call(request_chars: int, answer_chars: int, text: str = "x") -> CapturedCall:
    return CapturedCall(
        api=Api.OPENAI_CHAT,
        request={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": text * request_chars}],
        },
        primary=ArmResult(
            provider="openai",
            status_code=200,
            latency_ms=10.0,
            output=Output(text=text * answer_chars, parsed_json={"a": text * 10}),
        ),
    )


def test_a_small_event_is_dumped_as_it_is() -> None:
    call = big_call(10, 10)
    assert dump_to_fit(call, LIMIT) == dump_event(call)
    assert dump_to_fit(call, None) == dump_event(call)
    assert b'"bus"' not in dump_event(call)  # the flag is written only when set


def test_a_large_answer_is_cut_and_flagged_and_the_request_kept_whole() -> None:
    call = big_call(1000, 3 * LIMIT)
    raw = dump_to_fit(call, LIMIT)
    assert len(raw) <= LIMIT
    cut = parse_captured_call(raw)
    assert cut.request == call.request  # the runner can still replay it
    assert not cut.truncated.request and cut.truncated.response and cut.truncated.bus
    assert cut.primary.truncated
    assert cut.primary.output is not None
    assert cut.primary.output.text.endswith(CUT_MARK)
    assert cut.primary.output.parsed_json is None  # no longer matches the cut text


def test_a_large_request_moves_to_request_text_and_is_flagged() -> None:
    call = big_call(3 * LIMIT, 10)
    cut = parse_captured_call(dump_to_fit(call, LIMIT))
    assert cut.request is None and cut.truncated.request and cut.truncated.bus
    assert cut.request_text is not None and cut.request_text.startswith('{"model":"gpt-4o"')
    assert cut.primary.output is not None and cut.primary.output.text == "x" * 10


@pytest.mark.parametrize("text", ["é", "😀", '"', "\x01"])
def test_multibyte_and_escaped_text_still_fits(text: str) -> None:
    """Cutting counts characters; the size that matters is the serialised one (UTF-8 bytes,
    JSON escapes of up to six bytes a character)."""
    call = big_call(LIMIT, LIMIT, text)
    assert len(dump_to_fit(call, LIMIT)) <= LIMIT


def test_a_pair_whose_parts_each_fit_is_cut_to_fit_together() -> None:
    call = big_call(300_000, 400_000)
    answer = ArmResult(
        provider="anthropic",
        status_code=200,
        latency_ms=12.0,
        output=Output(
            text="y" * 400_000,
            tool_calls=(ToolCall(name="lookup", arguments=json.dumps({"q": "z" * 300_000})),),
        ),
    )
    pair = ShadowPair(call=call, migration="m", arm=Arm(name="c"), result=answer)
    assert len(dump_event(pair)) > LIMIT
    cut = parse_shadow_pair(dump_to_fit(pair, LIMIT))
    assert len(dump_to_fit(pair, LIMIT)) <= LIMIT
    assert cut.call.truncated.bus and cut.result.truncated
    assert cut.result.output is not None and cut.result.output.tool_calls[0].name == "lookup"
    # The judge says why it cannot compare, rather than a generic failure.
    reason = unusable_reason(cut.result, "candidate", bus_cut=cut.call.truncated.bus)
    assert reason is not None and "bus message limit" in reason


def test_an_event_from_before_the_flag_still_parses() -> None:
    raw = dump_event(big_call(1, 1)).replace(b',"bus":false', b"")
    assert parse_captured_call(raw).truncated.bus is False
