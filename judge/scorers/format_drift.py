"""Format drift: did the candidate's answer change *shape*, whatever it says?

An app that parses its model's output breaks on a shape change long before anyone notices a
change of meaning: a JSON answer now wrapped in a markdown fence, a key renamed, a number now
a string, a different tool called, a stream that now stops on `length`. Each such change is a
finding, a stable snake_case string (the `Finding` values) stored as-is in ClickHouse and shown
on the review page, so their spelling never changes — a new check gets a new name and bumps
`FORMAT_DRIFT_VERSION`.

Findings
--------
``fence_added`` / ``fence_removed``
    One side's text is wrapped in a single markdown fence and the other's is not, where at
    least one side is JSON (a fence around prose is not this check's business).
``json_lost`` / ``json_gained``
    The primary's text is JSON (an object or array, bare or fenced: `Output.parsed_json`) and
    the candidate's is not, or the other way round.
``keys_added`` / ``keys_removed``
    Both are JSON and an object at the same path (top level or nested, array elements compared
    by index) has keys the other lacks. Reported once each, however many paths differ.
``type_changed``
    Both are JSON and a value at the same path has another JSON type (object, array, string,
    number, boolean, null; ``1`` and ``1.0`` are both numbers).
``tool_name_changed`` / ``tool_call_added`` / ``tool_call_removed``
    Tool calls are matched by name (the k-th call of a name with the k-th of the same name), so
    parallel calls in another order are no finding. Calls left unmatched on both sides are a
    name change; more (fewer) calls than the primary made is an addition (removal).
``tool_preamble_added`` / ``tool_preamble_removed`` (format-2)
    Both sides call tools and only one says something beside the calls ("I'll look that up.").
    An app that shows the text, or expects none, sees the difference.
``tool_args_changed`` / ``tool_args_invalid``
    For matched calls: the arguments are not structurally equal JSON (key order irrelevant,
    numbers compared as numbers, `true` is not `1`), or the candidate's arguments are not
    valid JSON while the primary's are. Empty arguments mean ``{}``.
``finish_reason_changed``
    The normalised `FinishReason` differs (only when both sides report one).
``length_ratio_high`` / ``length_ratio_low``
    Candidate length / primary length (text, refusal and tool-call names and arguments, in
    characters) is above / below the configured bounds (default [0.5, 2.0]).

`drift` is true iff there is a finding other than the two length ones: a longer or shorter
answer is a change of style, not of shape — nothing that parses the output breaks on it — and
counting it as drift would drown the shape changes in verbosity noise. The length findings stay
in `findings` for the review page and for rules that want them.

Speed
-----
A hand-written walk rather than DeepDiff: DeepDiff 9.1 takes ~180 µs to diff a four-key object
(it builds a full report of paths and values we would throw away), over the whole per-pair
budget; this walk stops as soon as the three JSON findings are all known and costs a few
microseconds for typical answers. Most JSON pairs are the same object (another key order,
spacing or fence): their texts with sorted keys, written by orjson (~1 µs), are then equal
and neither walk runs (`_same_json_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from mirror.events import Output, ToolCall

#: Part of the judge version: bump on any change to what a finding means or when it fires.
FORMAT_DRIFT_VERSION = "format-2"
DEFAULT_LENGTH_BOUNDS: tuple[float, float] = (0.5, 2.0)
#: JSON nested deeper than this is not walked further (orjson accepts up to 1024 levels).
_MAX_DEPTH = 64


class Finding(StrEnum):
    FENCE_ADDED = "fence_added"
    FENCE_REMOVED = "fence_removed"
    JSON_LOST = "json_lost"
    JSON_GAINED = "json_gained"
    KEYS_ADDED = "keys_added"
    KEYS_REMOVED = "keys_removed"
    TYPE_CHANGED = "type_changed"
    TOOL_NAME_CHANGED = "tool_name_changed"
    TOOL_CALL_ADDED = "tool_call_added"
    TOOL_CALL_REMOVED = "tool_call_removed"
    TOOL_ARGS_CHANGED = "tool_args_changed"
    TOOL_ARGS_INVALID = "tool_args_invalid"
    TOOL_PREAMBLE_ADDED = "tool_preamble_added"
    TOOL_PREAMBLE_REMOVED = "tool_preamble_removed"
    FINISH_REASON_CHANGED = "finish_reason_changed"
    LENGTH_RATIO_HIGH = "length_ratio_high"
    LENGTH_RATIO_LOW = "length_ratio_low"


#: Findings that do not make `drift` true (see the module docstring).
LENGTH_FINDINGS = frozenset({Finding.LENGTH_RATIO_HIGH.value, Finding.LENGTH_RATIO_LOW.value})


class FormatDrift(NamedTuple):
    """The findings in declaration order of `Finding`, as plain strings."""

    drift: bool
    findings: tuple[str, ...]
    #: Candidate length / primary length; None when the primary's answer is empty.
    length_ratio: float | None


NO_DRIFT = FormatDrift(drift=False, findings=(), length_ratio=None)

_FENCE_OPEN = re.compile(r"\s*```")
# JSON types by Python type as orjson produces them; int and float are both "number".
_KIND: dict[type, int] = {dict: 0, list: 1, str: 2, int: 3, float: 3, bool: 4, type(None): 5}
_OBJECT, _ARRAY = 0, 1
_JSON_FINDINGS = 3  # keys_added, keys_removed, type_changed: the walk stops once all are known
_INVALID = object()
_PLAIN = {f.value: f.value for f in Finding}  # a member (or its value) -> its plain value
_RANK = {f.value: rank for rank, f in enumerate(Finding)}


def format_drift(
    primary: Output,
    candidate: Output,
    *,
    length_bounds: tuple[float, float] = DEFAULT_LENGTH_BOUNDS,
) -> FormatDrift:
    """Compare the shapes of two answers to the same request (see the module docstring)."""
    found: set[str] = set()
    p_json = primary.parsed_json is not None
    c_json = candidate.parsed_json is not None
    if p_json or c_json:
        p_fenced, c_fenced = _fenced(primary.text), _fenced(candidate.text)
        if c_fenced and not p_fenced:
            found.add(Finding.FENCE_ADDED)
        elif p_fenced and not c_fenced:
            found.add(Finding.FENCE_REMOVED)
        if p_json and not c_json:
            found.add(Finding.JSON_LOST)
        elif c_json and not p_json:
            found.add(Finding.JSON_GAINED)
        elif not _same_json_text(primary.parsed_json, candidate.parsed_json):
            shape: set[str] = set()
            _walk(primary.parsed_json, candidate.parsed_json, shape, 0)
            found |= shape
    if primary.tool_calls or candidate.tool_calls:
        if primary.tool_calls != candidate.tool_calls:  # equal calls (ids too): no finding
            _compare_tools(primary.tool_calls, candidate.tool_calls, found)
        if primary.tool_calls and candidate.tool_calls:
            p_said, c_said = bool(primary.text.strip()), bool(candidate.text.strip())
            if c_said and not p_said:
                found.add(Finding.TOOL_PREAMBLE_ADDED)
            elif p_said and not c_said:
                found.add(Finding.TOOL_PREAMBLE_REMOVED)
    if (
        primary.finish_reason is not None
        and candidate.finish_reason is not None
        and primary.finish_reason is not candidate.finish_reason
    ):
        found.add(Finding.FINISH_REASON_CHANGED)
    ratio = length_ratio(primary, candidate)
    if ratio is not None:
        low, high = length_bounds
        if ratio > high:
            found.add(Finding.LENGTH_RATIO_HIGH)
        elif ratio < low:
            found.add(Finding.LENGTH_RATIO_LOW)
    if not found:
        return FormatDrift(False, (), ratio)
    # plain strings in declaration order: a pair has a finding or two, not all seventeen
    findings = tuple(sorted([_PLAIN[f] for f in found], key=_RANK.__getitem__))
    return FormatDrift(not found <= LENGTH_FINDINGS, findings, ratio)


def answer_length(output: Output) -> int:
    """Characters of everything the model produced: text, refusal, tool names and arguments."""
    size = len(output.text) + len(output.refusal or "")
    for call in output.tool_calls:
        size += len(call.name) + len(call.arguments)
    return size


def length_ratio(primary: Output, candidate: Output) -> float | None:
    base = answer_length(primary)
    return None if base == 0 else round(answer_length(candidate) / base, 4)


def json_equal(a: Any, b: Any) -> bool:
    """Structural equality of parsed JSON: key order irrelevant, `1 == 1.0`, `true != 1`.

    Python's `==` already ignores key order and compares numbers as numbers; it only has to be
    kept from equating booleans with 0 and 1, which the second walk does (down to `_MAX_DEPTH`).
    JSON nested past Python's recursion limit (orjson parses 1024 levels) is not equal.
    """
    if _same_json_text(a, b):
        return True
    try:
        return bool(a == b) and _same_booleans(a, b, 0)
    except RecursionError:
        return False


def _same_json_text(a: Any, b: Any) -> bool:
    """Whether `a` and `b` are the same JSON to the type at every path, told in C: the same
    text, keys sorted, with no `null` in it (orjson writes a NaN or an infinity as `null`,
    which would hide a number beside a null). Then they are `json_equal` and the walk finds
    nothing; False (the walks decide) when the texts differ or orjson cannot write a value."""
    try:
        text = orjson.dumps(a, option=orjson.OPT_SORT_KEYS)
        return b"null" not in text and text == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits, a lone surrogate, nesting past 255 levels
        return False


def parse_arguments(raw: str) -> Any:
    """Tool-call arguments as JSON; `_INVALID` when they are not JSON. Empty means `{}`."""
    if not raw or raw.isspace():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _INVALID


def tool_calls_equal(primary: Sequence[ToolCall], candidate: Sequence[ToolCall]) -> bool:
    """Same tool names (in any order) with structurally equal arguments."""
    if len(primary) != len(candidate):
        return False
    if not primary or primary == candidate:  # the same calls in the same order (ids too)
        return True
    found: set[str] = set()
    _compare_tools(primary, candidate, found)
    return not found


def _fenced(text: str) -> bool:
    return _FENCE_OPEN.match(text) is not None and text.rstrip().endswith("```")


def _walk(a: Any, b: Any, found: set[str], depth: int) -> None:
    kind = _KIND.get(type(a), -1)
    if kind != _KIND.get(type(b), -2):
        found.add(Finding.TYPE_CHANGED)
        return
    if depth >= _MAX_DEPTH:
        return
    if kind == _OBJECT:
        if a.keys() != b.keys():
            if not b.keys() <= a.keys():
                found.add(Finding.KEYS_ADDED)
            if not a.keys() <= b.keys():
                found.add(Finding.KEYS_REMOVED)
        for key, value in a.items():
            if len(found) >= _JSON_FINDINGS:
                return
            other = b.get(key, _INVALID)
            if other is not _INVALID:
                _step(value, other, found, depth + 1)
    elif kind == _ARRAY:
        for x, y in zip(a, b, strict=False):
            if len(found) >= _JSON_FINDINGS:
                return
            _step(x, y, found, depth + 1)


def _step(a: Any, b: Any, found: set[str], depth: int) -> None:
    """`_walk(a, b, found, depth)`, a pair of scalars decided without the call (most values)."""
    kind = _KIND.get(type(a), -1)
    if kind != _KIND.get(type(b), -2):
        found.add(Finding.TYPE_CHANGED)
    elif kind == _OBJECT or kind == _ARRAY:
        _walk(a, b, found, depth)


def _same_booleans(a: Any, b: Any, depth: int) -> bool:
    # Called only on values already `==`: the shapes match, only bool-vs-number can differ.
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb
    if depth >= _MAX_DEPTH:
        return True
    if ta is dict:
        pairs: Iterable[tuple[Any, Any]] = ((value, b[key]) for key, value in a.items())
    elif ta is list:
        pairs = zip(a, b, strict=True)
    else:
        return True
    # each pair as the call on it would decide it, scalars (most values) without the call
    for x, y in pairs:
        tx, ty = type(x), type(y)
        if tx is bool or ty is bool:
            if tx is not ty:
                return False
        elif (tx is dict or tx is list) and not _same_booleans(x, y, depth + 1):
            return False
    return True


def _compare_tools(
    primary: Sequence[ToolCall], candidate: Sequence[ToolCall], found: set[str]
) -> None:
    waiting: dict[str, list[ToolCall]] = {}
    for call in candidate:
        waiting.setdefault(call.name, []).append(call)
    unmatched_primary = 0
    for call in primary:
        same_name = waiting.get(call.name)
        if not same_name:
            unmatched_primary += 1
            continue
        _compare_arguments(call.arguments, same_name.pop(0).arguments, found)
    unmatched_candidate = sum(len(calls) for calls in waiting.values())
    if unmatched_primary and unmatched_candidate:
        found.add(Finding.TOOL_NAME_CHANGED)
    if len(candidate) > len(primary):
        found.add(Finding.TOOL_CALL_ADDED)
    elif len(candidate) < len(primary):
        found.add(Finding.TOOL_CALL_REMOVED)


def _compare_arguments(primary: str, candidate: str, found: set[str]) -> None:
    if primary == candidate:
        return
    p_args, c_args = parse_arguments(primary), parse_arguments(candidate)
    if c_args is _INVALID:
        if p_args is not _INVALID:
            found.add(Finding.TOOL_ARGS_INVALID)
        else:
            found.add(Finding.TOOL_ARGS_CHANGED)  # both invalid, and not the same text
    elif p_args is _INVALID or not json_equal(p_args, c_args):
        found.add(Finding.TOOL_ARGS_CHANGED)
