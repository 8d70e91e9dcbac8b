"""Answers translated back between Anthropic Messages and Chat Completions, for the sidecar.

When the sidecar serves a call from a candidate on the other provider, the app's request is
translated with `translate_served_request` and the candidate's answer comes back through
`translate_response` (a complete body) or `mirror.translate.stream.StreamTranslator` (a
stream), in the shape the app's SDK parses. As for requests, an answer is translated
faithfully or not at all: what the app's API cannot express raises `Untranslatable(reason)`,
the reason naming the field (`content[1]`, `choices[0].message.refusal`), and the sidecar
serves that call from the primary instead. Nothing pretends to be the app's model: `model` is
the model that answered. The bodies are the decoded JSON of a 200 answer (the sidecar undoes
any `content-encoding` first).

==========================  ==========================  =========================================
Anthropic Messages          Chat Completions            decision
==========================  ==========================  =========================================
`text` blocks               `message.content`           translated; several blocks joined in order;
                                                        none: `""` (`null` beside tool calls)
`tool_use` blocks           `message.tool_calls`        translated, ids kept; `input` as compact
                            (function, `arguments` a    JSON text; back: `arguments` must be a
                            JSON string)                JSON object (`""` is `{}`), an id
                                                        Anthropic would refuse is refused
text after a `tool_use`     -                           refused: Chat puts the text before calls
`thinking`,                 -                           refused (no visible reasoning in Chat)
`redacted_thinking`,
server tool use and its
result blocks, `container`
upload blocks, `citations`
-                           `refusal`, `audio`,         refused
                            `function_call`, non-empty
                            `annotations`, `logprobs`,
                            `moderation`, more than one
                            choice (`n` > 1)
`stop_reason` end_turn,     `finish_reason` stop        translated; back: stop is end_turn
stop_sequence                                           (`tool_use` when tool calls are present, as
                                                        a forced tool call ends with stop)
max_tokens,                 length                      translated; back: max_tokens
model_context_window_
exceeded
tool_use                    tool_calls                  translated both ways
refusal                     content_filter              translated both ways (`stop_details`,
                                                        the category, is dropped)
pause_turn                  function_call               refused (server tools; legacy functions)
`stop_sequence`             -                           dropped; back: null (Chat does not say
                                                        which sequence stopped it)
`usage.input_tokens` +      `prompt_tokens`             translated (Anthropic counts the three
`cache_read_input_tokens`                               apart, Chat includes the cache in the
+ `cache_creation_...`                                  prompt); back: input = prompt - cached -
                                                        written
`cache_read_input_tokens`   `prompt_tokens_details.     translated
                            cached_tokens`
`cache_creation_input_      `prompt_tokens_details.     translated when reported; Chat rarely
tokens`                     cache_write_tokens`         reports writes, so back it is mostly 0
`output_tokens`             `completion_tokens`;        translated; total = prompt + completion
                            `total_tokens`
`output_tokens_details.     `completion_tokens_details  translated (both are hidden reasoning
thinking_tokens`            .reasoning_tokens`          counted in the output)
`id` msg_X                  `id` chatcmpl-X             derived from the answer's id
-                           `created`                   the time of translation
`model`                     `model`                     the model that answered (`model=`)
`service_tier`, `speed`,    `service_tier`,             dropped: billing and capacity, not the
`inference_geo`,            `system_fingerprint`,       answer
`diagnostics`               `obfuscation`
anything else               anything else               refused as unknown
==========================  ==========================  =========================================

Approximate, on purpose: the stop sequence that ended an answer (Chat does not name it); the
refusal category; cache writes reported by Chat (mostly absent, so 0); and `created`, the time
of translation. The request side adds one refusal to `translate_request`'s table: a Chat
request asking for `logprobs` cannot be served by Anthropic, since the app reads them in the
answer (the replay drops them because the comparison does not).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson

from mirror.errors import Untranslatable
from mirror.events import Api
from mirror.translate.messages import JSON, TOOL_USE_ID, present
from mirror.translate.params import SamplingPolicy
from mirror.translate.request import DEFAULT_MAX_TOKENS, translate_request

__all__ = [
    "Untranslatable",
    "chat_finish",
    "chat_usage",
    "completion_to_message",
    "message_stop_reason",
    "message_to_completion",
    "messages_usage",
    "translate_response",
    "translate_served_request",
]

TO_CHAT = "Chat Completions"
TO_ANTHROPIC = "Anthropic Messages"

_CHAT_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_MESSAGES_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
#: Chat Completions takes a call's arguments as JSON text; compact, as the models write them.
_COMPACT = (",", ":")

_MESSAGE_KEYS = ("id", "type", "role", "model", "content", "stop_reason", "usage")
_MESSAGE_DROPPED = ("stop_sequence", "stop_details", "diagnostics")
_COMPLETION_KEYS = ("id", "object", "created", "model", "choices", "usage")
_COMPLETION_DROPPED = ("service_tier", "system_fingerprint", "obfuscation")
_USAGE_DROPPED = ("service_tier", "speed", "inference_geo", "cache_creation", "server_tool_use")


@contextmanager
def malformed(what: str) -> Iterator[None]:
    """An answer of an unexpected shape is a reason to serve the primary, not a crash."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise Untranslatable(f"malformed {what}: {type(exc).__name__}: {exc}") from exc


def screen(
    obj: Any, where: str, known: Iterable[str], target: str, dropped: Iterable[str] = ()
) -> JSON:
    """`obj` as an object whose keys with a value are all known or harmless, else refused.

    `where` prefixes the key in the reason (`"choices[0].message."`, or `""` at the top).
    """
    if not isinstance(obj, dict):
        raise Untranslatable(f"{where.rstrip('.') or 'body'}: expected an object")
    allowed = {*known, *dropped}
    for key, value in obj.items():
        if key not in allowed and present(value):
            raise Untranslatable(f"{where}{key}: has no {target} counterpart")
    return obj


def chat_id(source_id: Any) -> str:
    return "chatcmpl-" + str(source_id).removeprefix("msg_")


def message_id(source_id: Any) -> str:
    return "msg_" + str(source_id).removeprefix("chatcmpl-")


def _int(value: Any) -> int:
    """A token count; absent is 0, anything else that is not a count is refused."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Untranslatable(f"usage: {value!r} is not a token count")
    return value


# --- stop reasons and usage (shared with the stream translator) --------------------------------


def chat_finish(stop_reason: Any) -> str:
    """An Anthropic `stop_reason` as a Chat Completions `finish_reason`."""
    if stop_reason not in _CHAT_FINISH:
        raise Untranslatable(f"stop_reason={stop_reason!r}: has no {TO_CHAT} counterpart")
    return _CHAT_FINISH[stop_reason]


def message_stop_reason(finish_reason: Any, *, tool_calls: bool) -> str:
    """A Chat Completions `finish_reason` as an Anthropic `stop_reason`."""
    if finish_reason == "stop" and tool_calls:
        return "tool_use"  # a forced tool call (`tool_choice` naming a function) ends with stop
    if finish_reason not in _MESSAGES_STOP:
        raise Untranslatable(f"finish_reason={finish_reason!r}: has no {TO_ANTHROPIC} counterpart")
    return _MESSAGES_STOP[finish_reason]


def chat_usage(usage: Mapping[str, Any]) -> JSON:
    """Anthropic usage (a body's, or a stream's start and deltas laid over each other)."""
    screen(
        usage,
        "usage.",
        (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens_details",
        ),
        TO_CHAT,
        _USAGE_DROPPED,
    )
    read = _int(usage.get("cache_read_input_tokens"))
    written = usage.get("cache_creation_input_tokens")
    prompt = _int(usage.get("input_tokens")) + read + _int(written)
    completion = _int(usage.get("output_tokens"))
    prompt_details: JSON = {"cached_tokens": read}
    if written is not None:
        prompt_details["cache_write_tokens"] = _int(written)
    details = usage.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": _int(thinking)},
    }


def messages_usage(usage: Any) -> JSON:
    """Chat Completions usage as Anthropic's, whose input tokens exclude the cached ones."""
    if not isinstance(usage, dict):
        raise Untranslatable(f"usage: missing; {TO_ANTHROPIC} always reports it")
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = _int(details.get("cached_tokens"))
    written = _int(details.get("cache_write_tokens"))
    if cached + written > prompt:  # "unadjusted" writes overlapping the reads: keep the reads
        written = 0
    if cached > prompt:
        raise Untranslatable(f"usage: {cached} cached tokens of a {prompt}-token prompt")
    out: JSON = {
        "input_tokens": prompt - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": _int(usage.get("completion_tokens")),
    }
    completion = usage.get("completion_tokens_details")
    reasoning = completion.get("reasoning_tokens") if isinstance(completion, dict) else None
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": _int(reasoning)}
    return out


# --- content ----------------------------------------------------------------------------------


def text_block_to_chat(block: JSON, where: str) -> str:
    if present(block.get("citations")):
        raise Untranslatable(f"{where}.citations: has no {TO_CHAT} counterpart")
    screen(block, f"{where}.", ("type", "text", "citations"), TO_CHAT)
    text = block.get("text")
    if not isinstance(text, str):
        raise Untranslatable(f"{where}.text: expected a string")
    return text


def screen_tool_use(block: JSON, where: str) -> None:
    if block.get("caller") not in (None, {"type": "direct"}):
        raise Untranslatable(
            f"{where}.caller: programmatic tool calls have no {TO_CHAT} counterpart"
        )
    screen(block, f"{where}.", ("type", "id", "name", "input", "caller"), TO_CHAT)


def refuse_block(kind: Any, where: str) -> Untranslatable:
    return Untranslatable(f"{where}: {kind!r} blocks have no {TO_CHAT} counterpart")


def tool_arguments(raw: Any, where: str) -> JSON:
    """A Chat call's `arguments` text as Anthropic's `input` object (`""` is `{}`)."""
    if raw in (None, ""):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise Untranslatable(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise Untranslatable(f"{where}: not a JSON object, which {TO_ANTHROPIC} requires")
    return value


def tool_use_id(call_id: Any, where: str) -> str:
    if not isinstance(call_id, str) or not TOOL_USE_ID.fullmatch(call_id):
        raise Untranslatable(f"{where}: {call_id!r} is not a valid Anthropic tool_use id")
    return call_id


def message_to_completion(payload: JSON, *, model: str, created: int | None = None) -> JSON:
    """An Anthropic Messages answer as a Chat Completions answer from `model`."""
    screen(payload, "", _MESSAGE_KEYS, TO_CHAT, (*_MESSAGE_DROPPED, "container"))
    if payload.get("type") != "message":
        raise Untranslatable(f"type={payload.get('type')!r}: not a message")
    if present(payload.get("container")):
        raise Untranslatable(f"container: has no {TO_CHAT} counterpart")
    texts: list[str] = []
    calls: list[JSON] = []
    for i, block in enumerate(payload["content"]):
        where = f"content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if calls:
                raise Untranslatable(
                    f"{where}: text after a tool_use cannot keep its place in {TO_CHAT}"
                )
            texts.append(text_block_to_chat(block, where))
        elif kind == "tool_use":
            screen_tool_use(block, where)
            arguments = json.dumps(block.get("input"), ensure_ascii=False, separators=_COMPACT)
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        else:
            raise refuse_block(kind, where)
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        raise Untranslatable("usage: missing")
    return {
        "id": chat_id(payload["id"]),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": chat_finish(payload.get("stop_reason")),
            }
        ],
        "usage": chat_usage(usage),
    }


def completion_to_message(payload: JSON, *, model: str) -> JSON:
    """A Chat Completions answer as an Anthropic Messages answer from `model`."""
    screen(payload, "", _COMPLETION_KEYS, TO_ANTHROPIC, _COMPLETION_DROPPED)
    if payload.get("object") != "chat.completion":
        raise Untranslatable(f"object={payload.get('object')!r}: not a chat completion")
    choices = payload["choices"]
    if not isinstance(choices, list) or len(choices) != 1:
        count = len(choices) if isinstance(choices, list) else choices
        raise Untranslatable(f"choices: {count} choices (n > 1) have no {TO_ANTHROPIC} counterpart")
    choice = screen(choices[0], "choices[0].", ("index", "message", "finish_reason"), TO_ANTHROPIC)
    message = screen(
        choice["message"],
        "choices[0].message.",
        ("role", "content", "tool_calls"),
        TO_ANTHROPIC,
        ("annotations",) if choice["message"].get("annotations") == [] else (),
    )
    content = message.get("content")
    blocks: list[JSON] = []
    if content:
        if not isinstance(content, str):
            raise Untranslatable("choices[0].message.content: expected a string")
        blocks.append({"type": "text", "text": content})
    calls = message.get("tool_calls") or []
    for k, call in enumerate(calls):
        where = f"choices[0].message.tool_calls[{k}]"
        if call.get("type") != "function":
            raise Untranslatable(
                f"{where}: {call.get('type')!r} tool calls have no {TO_ANTHROPIC} counterpart"
            )
        screen(call, f"{where}.", ("id", "type", "function"), TO_ANTHROPIC)
        fn = screen(call["function"], f"{where}.function.", ("name", "arguments"), TO_ANTHROPIC)
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.get("id"), f"{where}.id"),
                "name": fn["name"],
                "input": tool_arguments(fn.get("arguments"), f"{where}.function.arguments"),
            }
        )
    return {
        "id": message_id(payload["id"]),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": message_stop_reason(choice.get("finish_reason"), tool_calls=bool(calls)),
        "stop_sequence": None,
        "usage": messages_usage(payload.get("usage")),
    }


def translate_response(
    body: bytes, *, source: Api, target: Api, model: str, created: int | None = None
) -> bytes:
    """A complete 200 answer of the `source` API as the JSON body of the `target` API.

    `model` is the model to report: the one that answered. `created` (Chat Completions) is
    the time of translation unless given. The same API on both sides needs no translation:
    the body comes back as it is. Raises `Untranslatable` naming the field it cannot express.
    """
    if source is target:
        return body
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Untranslatable(f"body: not JSON ({exc})") from exc
    with malformed("answer"):
        if source is Api.ANTHROPIC_MESSAGES and target is Api.OPENAI_CHAT:
            out = message_to_completion(payload, model=model, created=created)
        elif source is Api.OPENAI_CHAT and target is Api.ANTHROPIC_MESSAGES:
            out = completion_to_message(payload, model=model)
        else:
            raise Untranslatable(f"no translation from {source.value} to {target.value}")
    return orjson.dumps(out)


def translate_served_request(
    body: dict[str, Any],
    *,
    source: Api,
    target: Api,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    sampling: SamplingPolicy = "refuse",
    mid_conversation_system: bool = False,
) -> dict[str, Any]:
    """`translate_request` for a call the candidate will answer to the app itself.

    A replay only compares answers, so `translate_request` drops what merely annotates them;
    the app reads its answer, so what it asked to find there and the target cannot give is
    refused here (today: Chat `logprobs`/`top_logprobs` towards Anthropic). The options are
    `translate_request`'s.
    """
    if source is Api.OPENAI_CHAT and target is Api.ANTHROPIC_MESSAGES:
        if body.get("logprobs") or body.get("top_logprobs"):
            raise Untranslatable(
                f"logprobs: the app reads them in the answer; {TO_ANTHROPIC} has none"
            )
    return translate_request(
        body,
        source=source,
        target=target,
        model=model,
        default_max_tokens=default_max_tokens,
        sampling=sampling,
        mid_conversation_system=mid_conversation_system,
    )
