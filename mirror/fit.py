"""Events cut to fit the bus's message limit, never refused for their size.

The sidecar caps each captured body (`capture.max_body_bytes`, 1 MiB by default), but a call
carries the request and the primary's answer, and a pair carries the call and the arm's answer:
a real pair can pass the producer's limit (Kafka's default is 1 MiB), and a message the bus
refuses would be lost, or worse, stop a consumer. So every event is serialised through
`dump_to_fit`: when it is over the limit, its largest bodies are cut, by a per-field cap that
halves until the event fits, and the event says so:

- an answer's text, refusal and tool-call arguments are cut and its `ArmResult.truncated` set
  (its parsed JSON is dropped: it no longer matches the text); a served call's candidate
  answer (`served_by.answer`) is an answer like the others;
- the request is moved to `request_text` (cut) and `truncated.request` set: the runner does not
  replay a request it does not have whole, and says so in a skip;
- `truncated.bus` is set on the call, so the judge records why it could not compare.

Cutting is by characters and checked by serialised size, so multi-byte text and JSON escapes
are accounted for. What is left is still a valid event of the contract.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from mirror.events import (
    ArmResult,
    CapturedCall,
    Output,
    ShadowPair,
    ToolCall,
    dump_event,
    dump_pair,
)

E = TypeVar("E", CapturedCall, ShadowPair)

#: Below this per-field cap the bodies are dropped outright (a marker of a few bytes is kept).
MIN_CAP_CHARS = 64
CUT_MARK = "…[cut to fit the bus message limit]"


def dump_to_fit(
    event: CapturedCall | ShadowPair, max_bytes: int | None, *, call_json: bytes | None = None
) -> bytes:
    """`event` serialised, cut first if it would pass `max_bytes` (None: no limit).

    `call_json`: a pair's call as JSON already at hand, spliced in (`dump_pair`); a pair
    that must be cut is serialised whole, its call cut too."""
    if isinstance(event, ShadowPair):
        raw = dump_pair(event, call_json)
    else:
        raw = dump_event(event)
    if max_bytes is None or len(raw) <= max_bytes:
        return raw
    if isinstance(event, ShadowPair):
        return dump_event(fit_event(event, max_bytes))
    return dump_event(fit_event(event, max_bytes))


def fit_event(event: E, max_bytes: int) -> E:
    """A copy of `event` whose serialised form is at most `max_bytes` (or as small as it can
    be made: the fixed fields alone may pass a tiny limit)."""
    cap = max_bytes // 2
    while True:
        cut = _cut_event(event, cap)
        if len(dump_event(cut)) <= max_bytes or cap == 0:
            return cut
        cap = cap // 2 if cap // 2 >= MIN_CAP_CHARS else 0


def _cut_event(event: E, cap: int) -> E:
    if isinstance(event, ShadowPair):
        call = _cut_call(event.call, cap)
        result, cut = _cut_result(event.result, cap)
        if cut and not call.truncated.bus:
            call = call.model_copy(
                update={"truncated": call.truncated.model_copy(update={"bus": True})}
            )
        return event.model_copy(update={"call": call, "result": result})
    return _cut_call(event, cap)


def _cut_call(call: CapturedCall, cap: int) -> CapturedCall:
    update: dict[str, Any] = {}
    flags: dict[str, bool] = {}
    if call.request is not None:
        text = json.dumps(call.request, ensure_ascii=False, separators=(",", ":"))
        if len(text) > cap:
            update["request"] = None
            update["request_text"] = _cut(text, cap)
            flags["request"] = True
    elif call.request_text is not None and len(call.request_text) > cap:
        update["request_text"] = _cut(call.request_text, cap)
        flags["request"] = True
    primary, cut = _cut_result(call.primary, cap)
    if cut:
        update["primary"] = primary
        flags["response"] = True
    served = call.served_by
    if served is not None and served.answer is not None:
        answer, cut = _cut_result(served.answer, cap)
        if cut:
            update["served_by"] = served.model_copy(update={"answer": answer})
            flags["response"] = True
    if not update:
        return call
    update["truncated"] = call.truncated.model_copy(update={**flags, "bus": True})
    return call.model_copy(update=update)


def _cut_result(result: ArmResult, cap: int) -> tuple[ArmResult, bool]:
    output = result.output
    if output is None:
        return result, False
    update: dict[str, Any] = {}
    if len(output.text) > cap:
        update["text"] = _cut(output.text, cap)
    if output.refusal is not None and len(output.refusal) > cap:
        update["refusal"] = _cut(output.refusal, cap)
    if output.tool_calls and any(len(t.arguments) > cap for t in output.tool_calls):
        update["tool_calls"] = tuple(_cut_tool_call(t, cap) for t in output.tool_calls)
    if output.parsed_json is not None and (update or _json_size(output.parsed_json) > cap):
        update["parsed_json"] = None
    if not update:
        return result, False
    cut_output: Output = output.model_copy(update=update)
    return result.model_copy(update={"output": cut_output, "truncated": True}), True


def _cut_tool_call(call: ToolCall, cap: int) -> ToolCall:
    if len(call.arguments) <= cap:
        return call
    return call.model_copy(update={"arguments": _cut(call.arguments, cap)})


def _cut(text: str, cap: int) -> str:
    return text[:cap] + CUT_MARK if cap else CUT_MARK


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str))
