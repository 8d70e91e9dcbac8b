"""What a fake provider answers: the scripted ``FakeReply`` and the deterministic default.

A ``Responder`` is called with the parsed JSON body and the request headers (a dict with
lower-case names) and returns a ``FakeReply`` (or ``None`` for the default answer); it may
be a coroutine function. Finish reasons may be given in either provider's words
(``stop``/``end_turn``, ``length``/``max_tokens``, ``tool_calls``/``tool_use``,
``content_filter``/``refusal``, ``stop_sequence``): each fake translates them.

The default answer is a pure function of the prompt: ``"Echo: <last user message>"``
followed by two to four filler sentences picked with a seed taken from that message, so
the same question gets the same text from every API (chat, responses, messages). After a
tool result it answers ``"Tool result: <result>"`` instead. It stops before the first
stop sequence found in it (``stop``/``stop_sequences``) and is cut to ``max_tokens * 4``
characters (finish reason ``length``) when longer than the token limit allows.

It calls a tool (one call, arguments made from the tool's JSON schema: strings get the
user's words, integers 1, numbers 1.5, enums their first value) when ``x-fake-tool`` asks,
when ``tool_choice`` requires one (``required``/``any``/a named tool), or, with
``tool_choice`` auto, when the last user message names one of the offered tools and is
not a tool result. A request for structured output (a JSON schema) is answered with a JSON
text made from the schema the same way.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .control import Control

UTF8_SAMPLE = "héllo — 日本語 🎉"
_PIECE = re.compile(r"\s*\S{1,8}|\s+")

_SENTENCES = (
    "Here is a short answer to your question.",
    "The result depends on the details you gave.",
    "This reply was generated without any network call.",
    "Let me know if you need more detail on any part.",
    "In short, the approach you describe should work.",
    "A careful review of the inputs is worth the time.",
    "There are a few trade-offs to keep in mind.",
    "The simplest option is usually the right first step.",
)

_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


@dataclass(frozen=True, slots=True)
class FakeUsage:
    """Token counts to report instead of the estimate."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0


@dataclass(slots=True)
class FakeReply:
    """A scripted answer. ``tool_calls`` holds ``(name, arguments_json)`` pairs.

    With ``status`` set, the fake answers that HTTP error instead (``error_type`` and
    ``error_message`` default to the provider's usual ones; ``retry_after`` is sent as
    the ``retry-after`` header, and defaults to ``"1"`` for a 429).
    """

    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    finish_reason: str | None = None
    stop_sequence: str | None = None
    usage: FakeUsage | None = None
    status: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    retry_after: str | None = None


Responder = Callable[
    [dict[str, Any], Mapping[str, str]], "FakeReply | None | Awaitable[FakeReply | None]"
]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool offered by the request: its name and JSON schema."""

    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Prompt:
    """The parts of a request the default answer depends on, in API-neutral form.

    ``tool_choice`` is ``None`` (auto), ``"none"``, ``"required"`` or a tool name.
    """

    last_user: str
    full_text: str
    messages: int
    tool_result: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    #: The JSON schema of a structured output (Anthropic `output_config.format`, Chat
    #: `response_format` json_schema): the answer is a JSON text that fits it.
    output_schema: Mapping[str, Any] | None = None


def estimate_tokens(text: str) -> int:
    """About one token per four characters, at least one for a non-empty text."""
    return (len(text) + 3) // 4


def openai_finish(reason: str | None, has_tools: bool) -> str:
    if reason is None:
        return "tool_calls" if has_tools else "stop"
    return _TO_OPENAI.get(reason, reason)


def anthropic_stop(reason: str | None, has_tools: bool) -> str:
    if reason is None:
        return "tool_use" if has_tools else "end_turn"
    return _TO_ANTHROPIC.get(reason, reason)


def reply_usage(reply: FakeReply, prompt: Prompt) -> FakeUsage:
    if reply.usage is not None:
        return reply.usage
    produced = reply.text + "".join(name + args for name, args in reply.tool_calls)
    return FakeUsage(
        input_tokens=estimate_tokens(prompt.full_text) + 3 * prompt.messages,
        output_tokens=max(1, estimate_tokens(produced)),
    )


def text_pieces(text: str, max_pieces: int = 2048) -> list[str]:
    """Stream chunks of a text: a few characters to a word each, at most ``max_pieces``."""
    if len(text) > max_pieces * 8:
        step = -(-len(text) // max_pieces)
        return [text[i : i + step] for i in range(0, len(text), step)]
    pieces = _PIECE.findall(text)
    if len(pieces) > max_pieces:
        group = -(-len(pieces) // max_pieces)
        pieces = ["".join(pieces[i : i + group]) for i in range(0, len(pieces), group)]
    return pieces


def json_pieces(text: str, size: int = 6) -> list[str]:
    """Argument fragments of a streamed tool call."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8])


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sized_text(head: str, size: int, seed: int) -> str:
    """``head`` followed by filler sentences, exactly ``size`` UTF-8 bytes long."""
    rng = random.Random(seed)
    parts = [head]
    total = len(head.encode())
    while total < size:
        sentence = " " + _SENTENCES[rng.randrange(len(_SENTENCES))]
        parts.append(sentence)
        total += len(sentence)
    raw = "".join(parts).encode()[:size]
    text = raw.decode("utf-8", "ignore")
    return text + "." * (size - len(text.encode()))


def default_text(prompt: Prompt, control: Control) -> str:
    if prompt.tool_result is not None:
        head = f"Tool result: {_snippet(prompt.tool_result, 500)}"
    else:
        head = f"Echo: {_snippet(prompt.last_user, 500)}"
    if control.split_utf8:
        head = f"{head} {UTF8_SAMPLE}"
    seed = _seed(prompt.last_user + "\0" + (prompt.tool_result or ""))
    if control.size is not None:
        return sized_text(head, control.size, seed)
    rng = random.Random(seed)
    count = 2 + rng.randrange(3)
    return " ".join([head, *(_SENTENCES[rng.randrange(len(_SENTENCES))] for _ in range(count))])


def _example(schema: Any, text: str, depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > 6:
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _example(schema[key][0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props: Mapping[str, Any] = schema.get("properties") or {}
        wanted = schema.get("required") or list(props)
        return {name: _example(props.get(name, {}), text, depth + 1) for name in wanted}
    if kind == "array":
        return [_example(schema.get("items", {}), text, depth + 1)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(str(kind), text)


def tool_arguments(tool: ToolSpec, prompt: Prompt) -> str:
    """Arguments that fit the tool's schema: strings get the user's words, numbers 1 or 1.5."""
    value = _example(tool.schema or {"type": "object"}, _snippet(prompt.last_user, 40), 0)
    if not isinstance(value, dict):
        value = {}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def choose_tool(prompt: Prompt, forced: str | None) -> ToolSpec | None:
    """Which tool the default answer calls, if any (see the module docstring of the fakes)."""
    by_name = {tool.name: tool for tool in prompt.tools}
    if forced is not None:
        if forced in by_name:
            return by_name[forced]
        if prompt.tools:
            return prompt.tools[0]
        is_flag = forced.lower() in ("1", "true", "yes", "*")
        return None if is_flag else ToolSpec(forced, {"type": "object", "properties": {}})
    choice = prompt.tool_choice
    if not prompt.tools or choice == "none":
        return None
    if choice == "required":
        return prompt.tools[0]
    if choice is not None:
        return by_name.get(choice, prompt.tools[0])
    if prompt.tool_result is not None:
        return None
    return next((tool for tool in prompt.tools if tool.name in prompt.last_user), None)


def default_reply(prompt: Prompt, control: Control) -> FakeReply:
    """The answer when no responder scripts one: text, maybe one tool call, finish reason."""
    tool = choose_tool(prompt, control.tool)
    if tool is not None:
        return FakeReply(tool_calls=[(tool.name, tool_arguments(tool, prompt))])
    if prompt.output_schema is not None:
        value = _example(prompt.output_schema, _snippet(prompt.last_user, 40), 0)
        return FakeReply(text=json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    text = default_text(prompt, control)
    if control.size is not None:
        return FakeReply(text=text)
    cut = min(((text.find(s), s) for s in prompt.stop if s and s in text), default=None)
    if cut is not None:
        return FakeReply(text=text[: cut[0]], finish_reason="stop_sequence", stop_sequence=cut[1])
    if prompt.max_tokens is not None and estimate_tokens(text) > prompt.max_tokens:
        return FakeReply(text=text[: max(prompt.max_tokens, 0) * 4], finish_reason="length")
    return FakeReply(text=text)


def fail_first(
    times: int,
    status: int = 429,
    *,
    retry_after: str | None = None,
    then: Responder | None = None,
) -> Responder:
    """A responder that answers ``status`` to the first ``times`` requests, then ``then``.

    Retry tests use it: the fake answers e.g. two 429s with ``retry-after`` and then the
    default reply (or whatever ``then`` returns).
    """
    remaining = [times]

    def respond(body: dict[str, Any], headers: Mapping[str, str]) -> Any:
        if remaining[0] > 0:
            remaining[0] -= 1
            return FakeReply(status=status, retry_after=retry_after)
        return then(body, headers) if then is not None else None

    return respond
