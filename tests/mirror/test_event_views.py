"""The judge's msgspec parse of a pair against pydantic's (`mirror.event_views`): the same pairs
accepted with equal values, the same refused with the same reason."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from enum import Enum
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mirror.errors import SerializationError
from mirror.event_views import MODELS, TWINS, parse_shadow_pair_view
from mirror.events import (
    Arm,
    ArmKind,
    ArmResult,
    Output,
    ShadowPair,
    dump_event,
    parse_shadow_pair,
)
from tests.demo_mix import demo_pairs, deterministic_pairs
from tests.mirror.test_events import embedding_pair, reference_text, served_call


def plain(value: Any) -> Any:
    """A comparable form of a parsed value: types kept (1 is not 1.0, an enum not its str),
    datetimes with their offset, models and twins as their fields."""
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return ("dict", {key: plain(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [plain(item) for item in value])
    if isinstance(value, datetime):
        return ("datetime", value, value.utcoffset())
    if isinstance(value, Enum):
        return (type(value).__name__, value.value)
    return (type(value).__name__, value)


def outcome(parse: Any, raw: bytes) -> Any:
    try:
        return plain(parse(raw))
    except SerializationError as exc:
        return ("refused", str(exc))


def test_every_field_and_property_of_the_contract_is_on_its_twin() -> None:
    for model in MODELS:
        twin = TWINS[model]
        assert twin.__struct_fields__ == tuple(model.model_fields), model.__name__
        properties = {
            name
            for klass in model.__mro__
            if issubclass(klass, BaseModel) and klass is not BaseModel
            for name, attribute in vars(klass).items()
            if isinstance(attribute, property)
        }
        assert properties <= set(dir(twin)), model.__name__
    pair = parse_shadow_pair_view(dump_event(next(deterministic_pairs(1))))
    assert isinstance(pair, TWINS[ShadowPair])
    assert pair.key == f"{pair.call.call_id}/{pair.migration}/{pair.arm.name}"
    assert pair.result.ok and pair.arm.kind is ArmKind.CANDIDATE


def test_a_model_the_twin_could_not_follow_is_refused_at_build() -> None:
    """A constraint or a validator would let pydantic refuse or change what a twin takes."""
    from pydantic import Field, field_validator

    from mirror.event_views import _twin

    class Constrained(BaseModel):
        n: int = Field(gt=0)

    class Validated(BaseModel):
        s: str

        @field_validator("s")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    for model in (Constrained, Validated):
        with pytest.raises(TypeError, match=model.__name__):
            _twin(model, {}, {})


def test_the_demo_traffic_decodes_to_the_values_pydantic_gives() -> None:
    pairs = [*demo_pairs(600), *deterministic_pairs(300)]
    pairs.append(ShadowPair(call=served_call(), migration="m", arm=pydantic_arm(), result=arm()))
    for pair in pairs:
        raw = dump_event(pair)
        view = parse_shadow_pair_view(raw)
        assert isinstance(view, msgspec.Struct)
        assert plain(view) == plain(parse_shadow_pair(raw)) == plain(pair)


def pydantic_arm() -> Arm:
    return Arm(name="sonnet")


def arm() -> ArmResult:
    return ArmResult(provider="anthropic", latency_ms=3, output=Output(text="Oslo."))


def test_a_pair_with_reference_texts_is_parsed_by_pydantic_whole() -> None:
    """Its constraints (the hash's pattern, the retention's range) and `model_copy` are
    pydantic's: such a pair comes back as the model."""
    pair = embedding_pair((reference_text(),))
    parsed = parse_shadow_pair_view(dump_event(pair))
    assert isinstance(parsed, ShadowPair) and parsed == pair
    bad = orjson.loads(dump_event(pair))
    bad["reference"][0]["text_hash"] = "not a hash"
    with pytest.raises(SerializationError, match=r"reference\.0\.text_hash"):
        parse_shadow_pair_view(orjson.dumps(bad))
    plain_pair = parse_shadow_pair_view(dump_event(embedding_pair()))
    assert isinstance(plain_pair, msgspec.Struct)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"schema_version": 2}',
        b"\xef\xbb\xbf{}",
        b'{"call": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # deeper than msgspec recurses
    ],
)
def test_what_neither_accepts_is_refused_with_pydantics_reason(raw: bytes) -> None:
    assert outcome(parse_shadow_pair_view, raw) == outcome(parse_shadow_pair, raw)
    assert outcome(parse_shadow_pair_view, raw)[0] == "refused"


def test_what_only_pydantics_lax_mode_accepts_is_still_accepted() -> None:
    pair = orjson.loads(dump_event(next(deterministic_pairs(1))))
    pair["result"]["status_code"] = "200"
    pair["result"]["stream"] = 1
    pair["call"]["captured_at"] = 1_700_000_000
    raw = orjson.dumps(pair)
    assert outcome(parse_shadow_pair_view, raw) == outcome(parse_shadow_pair, raw)
    assert parse_shadow_pair_view(raw).result.status_code == 200
    pair = orjson.loads(dump_event(next(deterministic_pairs(1))))
    del pair["call"]["call_id"], pair["call"]["captured_at"]
    view = parse_shadow_pair_view(orjson.dumps(pair))
    assert isinstance(view, msgspec.Struct)  # both made when parsed, as pydantic makes them
    assert len(view.call.call_id) == 36 and view.call.captured_at.tzinfo is not None


def test_a_timestamp_past_the_microsecond_is_rounded_where_pydantic_truncates() -> None:
    """The one known difference (the module docstring): no writer of ours sends one."""
    pair = orjson.loads(dump_event(next(deterministic_pairs(1))))
    pair["call"]["captured_at"] = "2026-12-06T17:42:31.123456789Z"
    raw = orjson.dumps(pair)
    assert parse_shadow_pair_view(raw).call.captured_at.microsecond == 123457
    assert parse_shadow_pair(raw).call.captured_at.microsecond == 123456


#: Values a mutation puts somewhere in a pair: what a writer of another version, a bug or a
#: hostile producer could send (timestamps to the microsecond: see the test above).
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "200",
            "1.5",
            "true",
            "stop",
            "openai.chat_completions",
            "candidate",
            "noise",
            "2026-12-06T17:42:31Z",
            "2026-12-06 17:42:31.5+02:00",
            "2026-12-06",
            "17:42:31",
            "float",
            "base64",
        ]
    ),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "text", "kind", "x", "id"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(paths(item, (*here, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(paths(item, (*here, index)))
    return found


SAMPLES = [
    orjson.loads(dump_event(pair))
    for pair in [
        *deterministic_pairs(3),
        *demo_pairs(6),
        ShadowPair(call=served_call(), migration="m", arm=pydantic_arm(), result=arm()),
    ]
]


#: Fields whose default is made when parsed (a new id, the time now): each parse makes its own.
FRESH = frozenset({"call_id", "captured_at"})


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    pair = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(pair)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        parent: Any = pair
        for step in path[:-1]:
            parent = parent[step]
        if not path:
            continue
        last = path[-1]
        if action == "replace":
            parent[last] = draw(JSON_VALUES)
        elif action == "delete" and isinstance(parent, dict) and last not in FRESH:
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(["extra", "text", "model", "bus"]))] = draw(
                JSON_VALUES
            )
    return json.dumps(pair).encode()  # orjson refuses integers past 64 bits


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_pairs_get_the_same_verdict_and_values_from_both(raw: bytes) -> None:
    assert outcome(parse_shadow_pair_view, raw) == outcome(parse_shadow_pair, raw)
