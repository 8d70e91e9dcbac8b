"""Format drift: every finding, what does not count as drift, and the speed budget."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.scorers.format_drift import (
    LENGTH_FINDINGS,
    NO_DRIFT,
    Finding,
    format_drift,
    json_equal,
    length_ratio,
    parse_arguments,
    tool_calls_equal,
)
from mirror.events import FinishReason, Output, ToolCall


def out(
    text: str = "",
    *,
    tools: tuple[tuple[str, str], ...] = (),
    finish: FinishReason | None = FinishReason.STOP,
    refusal: str | None = None,
) -> Output:
    """An `Output` as the mirror normalises it (`parsed_json` from the text)."""
    from mirror.answers.bodies import parse_json_text

    return Output(
        text=text,
        tool_calls=tuple(ToolCall(name=n, arguments=a) for n, a in tools),
        finish_reason=finish,
        parsed_json=parse_json_text(text),
        refusal=refusal,
    )


def j(value: Any) -> str:
    return orjson.dumps(value).decode()


def findings(primary: Output, candidate: Output) -> tuple[str, ...]:
    return format_drift(primary, candidate).findings


def test_identical_answers_have_no_findings() -> None:
    answer = out(j({"a": 1, "b": [1, 2]}))
    result = format_drift(answer, answer)
    assert result == format_drift(answer, answer)
    assert not result.drift and result.findings == () and result.length_ratio == 1.0


def test_a_preamble_beside_the_same_tool_calls_is_reported() -> None:
    call = (("lookup_order", j({"order_id": "NW-1"})),)
    assert findings(out("", tools=call), out("I'll look that up.", tools=call)) == (
        "tool_preamble_added",
    )
    assert findings(out("Checking.", tools=call), out("", tools=call)) == ("tool_preamble_removed",)
    assert findings(out("Checking.", tools=call), out("One moment.", tools=call)) == ()


def test_fence_added_and_removed_around_json() -> None:
    record = {"city": "Paris", "country": "France", "population": 2_100_000}
    bare = out(j(record))
    fenced = out(f"```json\n{j(record)}\n```")
    assert findings(bare, fenced) == ("fence_added",)
    assert findings(fenced, bare) == ("fence_removed",)
    assert format_drift(bare, fenced).drift


def test_a_fence_around_prose_is_not_this_checks_business() -> None:
    assert findings(out("print(1)"), out("```python\nprint(1)\n```")) == ("length_ratio_high",)


def test_json_lost_and_gained() -> None:
    data, prose = out(j({"city": "Paris"})), out("The city is Paris, as requested.")
    assert findings(data, prose) == ("json_lost",)
    assert findings(prose, data) == ("json_gained",)


def test_json_broken_inside_its_fence_is_lost() -> None:
    assert findings(out('```json\n{"a": 1}\n```'), out('```json\n{"a": 1,\n```')) == ("json_lost",)


def test_top_level_key_changes() -> None:
    primary = out(j({"name": "x", "age": 3}))
    assert findings(primary, out(j({"name": "x", "age": 3, "extra": 1}))) == ("keys_added",)
    assert findings(primary, out(j({"name": "x", "a": 3}))) == ("keys_added", "keys_removed")
    assert findings(primary, out(j({"name": "x", "agr": 3}))) == ("keys_added", "keys_removed")
    assert findings(primary, out(j({"name": "xyzabc"}))) == ("keys_removed",)


def test_nested_key_and_type_changes_are_reported_once_each() -> None:
    primary = out(j({"items": [{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}], "meta": {"n": 2}}))
    candidate = out(
        j({"items": [{"id": "1", "label": ["a"]}, {"id": "2", "tags": []}], "meta": {"n": 2.0}})
    )
    assert findings(primary, candidate) == ("keys_added", "keys_removed", "type_changed")


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ({"n": 1}, {"n": 1.5}, False),  # int and float are both numbers
        ({"n": 1}, {"n": "1"}, True),
        ({"n": True}, {"n": 1}, True),  # a boolean is not a number
        ({"n": None}, {"n": 0}, True),
        ({"n": [1]}, {"n": {"0": 1}}, True),
        ([1, 2], [1, 2, 3], False),  # array length is content, not shape
        ({"n": {"m": 1}}, {"n": {"m": 2}}, False),
    ],
)
def test_type_changes(before: Any, after: Any, changed: bool) -> None:
    got = findings(out(j(before)), out(j(after)))
    assert ("type_changed" in got) is changed


def test_top_level_array_becoming_an_object_is_a_type_change() -> None:
    assert findings(out(j([{"a": 1}])), out(j({"a": 1}))) == ("type_changed",)


def test_tool_calls_matched_by_name_in_any_order() -> None:
    primary = out(tools=(("get_weather", j({"city": "Paris"})), ("get_time", "{}")))
    swapped = out(tools=(("get_time", ""), ("get_weather", '{ "city" : "Paris" }')))
    assert findings(primary, swapped) == ()
    assert tool_calls_equal(primary.tool_calls, swapped.tool_calls)


def test_tool_name_changed_added_removed() -> None:
    one = out(tools=(("get_weather", "{}"),))
    assert findings(one, out(tools=(("weather", "{}"),))) == ("tool_name_changed",)
    two = out(tools=(("get_weather", "{}"), ("get_time", "{}")))
    assert findings(one, two)[0] == "tool_call_added"
    assert findings(two, one)[0] == "tool_call_removed"
    assert findings(one, out("It is sunny.", finish=FinishReason.STOP))[0] == "tool_call_removed"
    assert "tool_name_changed" in findings(one, out(tools=(("a", "{}"), ("b", "{}"))))


def test_tool_arguments_changed_or_invalid() -> None:
    primary = out(tools=(("search", j({"q": "cats", "limit": 10})),))
    same = out(tools=(("search", j({"limit": 10.0, "q": "cats"})),))
    other = out(tools=(("search", j({"q": "dogs", "limit": 10})),))
    broken = out(tools=(("search", '{"q": "cats", "limit": 1'),))
    assert findings(primary, same) == ()
    assert findings(primary, other) == ("tool_args_changed",)
    assert findings(primary, broken) == ("tool_args_invalid",)
    assert findings(broken, primary) == ("tool_args_changed",)
    assert findings(broken, broken) == ()
    boolean = out(tools=(("flag", j({"on": True})),))
    assert findings(boolean, out(tools=(("flag", j({"on": 1})),))) == ("tool_args_changed",)


def test_finish_reason_change_uses_the_normalised_reason() -> None:
    stop = out("Paris.", finish=FinishReason.STOP)
    assert findings(stop, out("Paris.", finish=FinishReason.LENGTH)) == ("finish_reason_changed",)
    # Anthropic end_turn and OpenAI stop are both STOP: no finding
    assert findings(stop, Output(text="Paris.", finish_reason=FinishReason.STOP)) == ()
    assert findings(stop, out("Paris.", finish=None)) == ()  # unknown is not a change


def test_length_ratio_findings_are_not_drift() -> None:
    short, long = out("Paris."), out("Paris is the capital of France and its largest city.")
    high = format_drift(short, long)
    assert high.findings == ("length_ratio_high",) and not high.drift
    assert high.length_ratio == pytest.approx(len(long.text) / len(short.text), abs=1e-4)
    low = format_drift(long, short)
    assert low.findings == ("length_ratio_low",) and not low.drift
    assert set(LENGTH_FINDINGS) == {"length_ratio_high", "length_ratio_low"}


def test_length_bounds_are_configurable() -> None:
    a, b = out("x" * 100), out("x" * 140)
    assert format_drift(a, b).findings == ()
    assert format_drift(a, b, length_bounds=(0.9, 1.2)).findings == ("length_ratio_high",)


def test_length_counts_tool_calls_and_refusals_and_is_none_for_an_empty_primary() -> None:
    assert length_ratio(out(), out("anything")) is None
    tool = out(tools=(("f", '{"a": 1}'),))
    assert length_ratio(tool, tool) == 1.0
    refused = Output(refusal="I can't help with that.")
    assert length_ratio(refused, out("I can't help with that.")) == 1.0


def test_findings_are_stable_strings_in_declared_order() -> None:
    result = format_drift(
        out(j({"alpha": 1, "beta": 2, "gamma": 3}), finish=FinishReason.STOP),
        out('```json\n{"alpha": "1", "beta": 2, "delta": 3}\n```', finish=FinishReason.LENGTH),
    )
    order = [f.value for f in Finding]
    assert list(result.findings) == sorted(result.findings, key=order.index)
    assert all(type(f) is str for f in result.findings)
    assert result.findings == (
        "fence_added",
        "keys_added",
        "keys_removed",
        "type_changed",
        "finish_reason_changed",
    )
    assert NO_DRIFT.findings == () and not NO_DRIFT.drift


def test_json_equal_and_arguments_parsing() -> None:
    assert json_equal({"a": [1, {"b": 2.0}]}, {"a": [1.0, {"b": 2}]})
    assert not json_equal({"a": True}, {"a": 1})
    assert not json_equal([0], [False])
    assert not json_equal({"a": 1}, {"a": 1, "b": None})
    assert parse_arguments("") == {} and parse_arguments("  ") == {}
    assert parse_arguments("[1]") == [1]


def test_deeply_nested_json_does_not_blow_the_stack() -> None:
    text = '{"k": ' * 1000 + "1" + "}" * 1000  # orjson parses it; Python's == cannot compare it
    assert format_drift(out(text), out(text)).findings == ()
    assert not json_equal(out(text).parsed_json, out(text).parsed_json)
    text = '{"k": ' * 200 + "1" + "}" * 200
    other = '{"k": ' * 200 + '"1"' + "}" * 200  # the change lies past the walk's depth bound
    assert format_drift(out(text), out(other)).findings == ()


# --- the walks, against their definitions ------------------------------------------------

_SCALARS = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 1.0, 2, 2.5]), st.just("a"))
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=12,
)
_OBJECTS = st.dictionaries(st.sampled_from("abc"), _JSON)
_KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number"}


def json_same(a: Any, b: Any) -> bool:
    """JSON equality by definition: key order irrelevant, 1 == 1.0, a boolean only a boolean."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(json_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def shape_findings(a: Any, b: Any, found: set[str]) -> set[str]:
    """The three JSON findings by definition: every path walked, arrays by index."""
    kind_a = _KINDS.get(type(a), type(a).__name__)
    if kind_a != _KINDS.get(type(b), type(b).__name__):
        found.add("type_changed")
    elif isinstance(a, dict):
        if b.keys() - a.keys():
            found.add("keys_added")
        if a.keys() - b.keys():
            found.add("keys_removed")
        for key in a.keys() & b.keys():
            shape_findings(a[key], b[key], found)
    elif isinstance(a, list):
        for x, y in zip(a, b, strict=False):
            shape_findings(x, y, found)
    return found


@given(_JSON, _JSON)
def test_json_equal_is_its_definition(a: Any, b: Any) -> None:
    assert json_equal(a, b) is json_same(a, b)
    assert json_equal(a, a) and json_equal(b, b)


@given(
    st.dictionaries(st.sampled_from("abc"), _JSON), st.dictionaries(st.sampled_from("abc"), _JSON)
)
def test_the_json_findings_are_their_definition(a: Any, b: Any) -> None:
    shape = {"keys_added", "keys_removed", "type_changed"}
    assert set(findings(out(j(a)), out(j(b)))) & shape == shape_findings(a, b, set())


def test_what_orjson_writes_alike_or_cannot_write_goes_to_the_walks() -> None:
    """The equal-text shortcut must not equate a NaN or an infinity (written `null`) with a
    null, and must not refuse what orjson cannot write (an integer past 64 bits)."""
    nan, inf = float("nan"), float("inf")
    assert not json_equal([nan], [None]) and not json_equal({"a": inf}, {"a": None})
    same = [nan]
    assert json_equal(same, same)  # Python's `==` on the same list, as before
    assert json_equal({"n": 2**70}, {"n": 2**70}) and not json_equal([2**70], [2**70 + 1])
    for value in (nan, inf, 2**70):
        primary = Output(text="{}", parsed_json={"a": value, "b": [1]})
        candidate = Output(text="{}", parsed_json={"a": None, "b": [1]})
        assert format_drift(primary, candidate).findings == ("type_changed",)
