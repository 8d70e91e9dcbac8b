"""`CapturedCall.served_by`: additive to the contract (version 1 either way), cut to fit the
bus like any answer; `ArmResult.approximations` and `ShadowPair.reference`, additive the same
way; a pair written with its call's JSON spliced in (`dump_pair`), as the runner writes it."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct

import orjson
import pytest

from mirror.errors import SerializationError
from mirror.events import (
    Api,
    Arm,
    ArmResult,
    CapturedCall,
    EmbeddingSummary,
    ErrorInfo,
    ErrorKind,
    Output,
    ReferenceText,
    ServedBy,
    ShadowPair,
    Truncation,
    Usage,
    decode_vector,
    dump_event,
    dump_pair,
    encode_vector,
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


def embedding_pair(reference: tuple[ReferenceText, ...] = ()) -> ShadowPair:
    call = CapturedCall(
        api=Api.OPENAI_EMBEDDINGS,
        request={"model": "wordllama-l2", "input": "how do I open a file"},
        primary=ArmResult(provider="openai", model="wordllama-l2", status_code=200, latency_ms=2),
    )
    result = ArmResult(
        provider="local",
        model="multilingual-e5-small",
        status_code=200,
        latency_ms=5.0,
        output=Output(embeddings=EmbeddingSummary(count=1, dimensions=384, encoding="base64")),
    )
    return ShadowPair(
        call=call, migration="m", arm=Arm(name="e5"), result=result, reference=reference
    )


def reference_text(text: str = "how do I open a file") -> ReferenceText:
    rng = random.Random(7)
    return ReferenceText(
        text_hash=hashlib.sha256(text.encode()).hexdigest(),
        text=text,
        role="query",
        segment_key="tenant=acme",
        primary_model="wordllama-l2",
        primary_version="wordllama-l2",
        candidate_model="multilingual-e5-small",
        candidate_version="multilingual-e5-small",
        primary_vector=encode_vector(rng.uniform(-1, 1) for _ in range(256)),
        candidate_vector=encode_vector(rng.uniform(-1, 1) for _ in range(384)),
        retention_days=14,
    )


def test_vectors_travel_as_base64_float32_exactly() -> None:
    values = [0.1, -2.5, 3.4028234663852886e38, 1e-45, 0.0]
    encoded = encode_vector(values)
    assert base64.b64decode(encoded) == struct.pack("<5f", *values)
    assert decode_vector(encoded) == [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]
    assert len(encode_vector([0.5] * 384)) == 2048  # a third of JSON floats' size, or less
    with pytest.raises(ValueError, match="not whole float32"):
        decode_vector(base64.b64encode(b"abcdef").decode())


def test_reference_texts_are_written_only_when_there_are_some() -> None:
    plain = embedding_pair()
    raw = dump_event(plain)
    assert b"reference" not in raw  # readers from before the field still parse it
    assert parse_shadow_pair(raw) == plain
    carried = embedding_pair((reference_text(),))
    parsed = parse_shadow_pair(dump_event(carried))
    assert parsed == carried
    assert len(decode_vector(parsed.reference[0].candidate_vector)) == 384
    data = orjson.loads(dump_event(carried))
    data["reference"][0]["text_hash"] = "not a hash"
    with pytest.raises(SerializationError, match="reference.0.text_hash"):
        parse_shadow_pair(orjson.dumps(data))


def test_a_pair_of_128_reference_texts_fits_the_default_bus_limit() -> None:
    texts = tuple(reference_text(f"document number {i} " * 20) for i in range(128))
    raw = dump_event(embedding_pair(texts))
    assert len(raw) < 1 << 20  # Kafka's default message limit, the bus's default


def spliced_pairs() -> list[ShadowPair]:
    """Pairs of every shape the runner writes: plain, approximate, embedding with reference
    texts, a cut request, non-ASCII text, parsed JSON with floats, an error."""
    call = served_call("Ørsted, 東京 — «ok» \u2028").model_copy(update={"served_by": None})
    rich = call.model_copy(
        update={
            "segment": {"tenant": "acme", "route": "/é"},
            "request_headers": {"anthropic-version": "2023-06-01"},
            "truncated": Truncation(request=True, bus=True),
            "request": None,
            "request_text": '{"model": "gpt-4o", "messages": [{"rol',
        }
    )
    answer = ArmResult(
        provider="anthropic",
        model="claude-sonnet-4-6",
        status_code=200,
        latency_ms=1234.567,
        ttft_ms=0.1,
        output=Output(
            text='{"a": 1.5e300, "b": [0.1, -0.0, 1e-7], "c": "\\u00e9"}',
            parsed_json={"a": 1.5e300, "b": [0.1, -0.0, 1e-7], "c": "\u00e9"},
        ),
        usage=Usage(input_tokens=12, output_tokens=3, cached_tokens=0),
        approximations=("top_p not sent",),
    )
    failed = ArmResult(
        provider="openai",
        latency_ms=0.0,
        error=ErrorInfo(kind=ErrorKind.SKIPPED, message="daily spend cap reached"),
    )
    return [
        ShadowPair(call=call, migration="m", arm=Arm(name="sonnet"), result=answer),
        ShadowPair(call=rich, migration="m", arm=Arm(name="noise", kind="noise"), result=failed),
        embedding_pair(),
        embedding_pair((reference_text(), reference_text("ünïcode"))),
    ]


def test_a_pair_with_its_call_spliced_in_is_the_same_bytes() -> None:
    for pair in spliced_pairs():
        assert dump_event(pair) == pair.model_dump_json().encode()  # as written before
        assert dump_event(pair.call) == pair.call.model_dump_json().encode()
        assert dump_pair(pair, dump_event(pair.call)) == dump_event(pair)
        assert dump_pair(pair) == dump_event(pair)


def test_a_call_written_by_another_writer_gives_an_equal_pair() -> None:
    # Another writer's spacing, key order and escapes: the pair's bytes differ, its model not.
    for pair in spliced_pairs():
        data = orjson.loads(dump_event(pair.call))
        other = json.dumps(dict(reversed(data.items())), indent=1, ensure_ascii=True).encode()
        assert parse_captured_call(other) == pair.call
        raw = dump_pair(pair, other)
        assert raw != dump_event(pair)
        assert parse_shadow_pair(raw) == pair


def test_a_spliced_pair_over_the_limit_is_cut_whole() -> None:
    call = served_call().model_copy(update={"served_by": None})
    call = call.model_copy(update={"request": {"model": "gpt-4o", "input": "x" * 50_000}})
    result = ArmResult(provider="openai", latency_ms=1.0, status_code=200, output=Output(text="y"))
    pair = ShadowPair(call=call, migration="m", arm=Arm(name="mini"), result=result)
    raw = dump_to_fit(pair, 20_000, call_json=dump_event(call))
    assert len(raw) <= 20_000
    cut = parse_shadow_pair(raw)
    assert cut.call.request is None and cut.call.truncated.request and cut.call.truncated.bus
