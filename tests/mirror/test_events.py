"""`CapturedCall.served_by`: additive to the contract (version 1 either way), cut to fit the
bus like any answer; `ArmResult.approximations`, additive the same way."""

from __future__ import annotations

import orjson
import pytest

from mirror.errors import SerializationError
from mirror.events import (
    Api,
    Arm,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    Output,
    ServedBy,
    ShadowPair,
    dump_event,
    parse_captured_call,
    parse_shadow_pair,
)
from mirror.fit import dump_to_fit


def served_call(text: str = "Oslo.") -> CapturedCall:
    answer = ArmResult(
        provider="anthropic",
        model="claude-sonnet-4-6",
        status_code=200,
        latency_ms=12.0,
        output=Output(text=text),
    )
    return CapturedCall(
        api=Api.OPENAI_CHAT,
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": "Capital?"}]},
        primary=ArmResult(
            provider="openai",
            model="gpt-4o",
            latency_ms=0.0,
            error=ErrorInfo(kind=ErrorKind.SKIPPED, message="not asked"),
        ),
        served_by=ServedBy(
            migration="m",
            arm="sonnet",
            provider="anthropic",
            model="claude-sonnet-4-6",
            answer=answer,
        ),
    )


def test_a_served_call_round_trips() -> None:
    call = served_call()
    assert parse_captured_call(dump_event(call)) == call
    assert call.schema_version == 1


def test_a_call_not_served_is_written_as_before() -> None:
    call = served_call().model_copy(update={"served_by": None})
    raw = dump_event(call)
    assert b"served_by" not in raw  # readers from before the field still parse it
    assert parse_captured_call(raw) == call


def test_a_reader_that_does_not_know_the_field_refuses_it_rather_than_misread_it() -> None:
    data = orjson.loads(dump_event(served_call()))
    data["served_by"]["colour"] = "blue"  # what an older reader meets: a field it lacks
    with pytest.raises(SerializationError, match="served_by.colour"):
        parse_captured_call(orjson.dumps(data))


def test_the_served_answer_is_cut_to_fit() -> None:
    call = served_call(text="x" * 200_000)
    raw = dump_to_fit(call, 100_000)
    assert len(raw) <= 100_000
    cut = parse_captured_call(raw)
    assert cut.served_by is not None and cut.served_by.answer is not None
    assert cut.served_by.answer.truncated and cut.truncated.response and cut.truncated.bus


def test_approximations_are_written_only_when_there_are_some() -> None:
    call = served_call().model_copy(update={"served_by": None})
    result = ArmResult(provider="anthropic", status_code=200, latency_ms=3.0)
    faithful = ShadowPair(call=call, migration="m", arm=Arm(name="sonnet"), result=result)
    raw = dump_event(faithful)
    assert b"approximations" not in raw  # readers from before the field still parse it
    assert parse_shadow_pair(raw) == faithful
    notes = ("json_object as forced tool use", "top_p not sent")
    approximate = faithful.model_copy(
        update={"result": result.model_copy(update={"approximations": notes})}
    )
    parsed = parse_shadow_pair(dump_event(approximate))
    assert parsed.result.approximations == notes and parsed == approximate
