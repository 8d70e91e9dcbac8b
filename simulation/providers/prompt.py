"""Reading the prompt out of the three request shapes: chat, Responses and Messages.

Parsing is forgiving (a fake should not reject what the real API would accept); what it
cannot read it skips. ``last_user_text`` is public so scripted responders (an LLM judge
fake, say) can find the question whatever API the call came through.
"""

from __future__ import annotations

import json
from typing import Any

from .reply import Prompt, ToolSpec


def _text(content: Any) -> str:
    """Concatenated text of a message content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif part.get("type") == "tool_result":
                parts.append(_text(part.get("content")))
    return "\n".join(parts)


def _anthropic_tool_result(content: Any) -> str | None:
    if not isinstance(content, list):
        return None
    results = [
        _text(block.get("content"))
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    return "\n".join(results) if results else None


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("messages", body.get("input"))
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


def last_user_text(body: dict[str, Any]) -> str:
    """Text of the last user message of a chat, Responses or Messages request body."""
    for item in reversed(_items(body)):
        if item.get("role") == "user" and _anthropic_tool_result(item.get("content")) is None:
            return _text(item.get("content"))
    return ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stops(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(s for s in value if isinstance(s, str))
    return ()


def _choice(value: Any) -> str | None:
    """Normalise every provider's tool_choice to None (auto), none, required or a name."""
    if isinstance(value, str):
        return {"auto": None, "any": "required"}.get(value, value)
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind in ("auto", None):
        return None
    if kind in ("any", "required", "none"):
        return "none" if kind == "none" else "required"
    name = value.get("name") or (value.get("function") or {}).get("name")
    return name if isinstance(name, str) else None


def _full_text(parts: list[str], tools: list[Any]) -> str:
    if tools:
        parts.append(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(parts)


def chat_prompt(body: dict[str, Any]) -> Prompt:
    """Chat Completions: ``messages``, ``tools[].function``, ``stop``, ``max_*tokens``."""
    messages = _items(body)
    tools_raw = _list(body.get("tools"))
    tools = tuple(
        ToolSpec(t["function"]["name"], t["function"].get("parameters") or {})
        for t in tools_raw
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    )
    last = messages[-1] if messages else {}
    texts = [_text(m.get("content")) for m in messages]
    texts += [json.dumps(m["tool_calls"]) for m in messages if m.get("tool_calls")]
    return Prompt(
        last_user=last_user_text(body),
        full_text=_full_text(texts, tools_raw),
        messages=len(messages),
        tool_result=_text(last.get("content")) if last.get("role") == "tool" else None,
        tools=tools,
        tool_choice=_choice(body.get("tool_choice")),
        max_tokens=_int(body.get("max_completion_tokens")) or _int(body.get("max_tokens")),
        stop=_stops(body.get("stop")),
    )


def responses_prompt(body: dict[str, Any]) -> Prompt:
    """Responses: ``input`` (string or items), ``instructions``, flat function tools."""
    items = _items(body)
    tools_raw = _list(body.get("tools"))
    tools = tuple(
        ToolSpec(t["name"], t.get("parameters") or {})
        for t in tools_raw
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
    )
    texts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    for item in items:
        texts.append(_text(item.get("content")))
        for key in ("arguments", "output"):
            if isinstance(item.get(key), str):
                texts.append(item[key])
    last = items[-1] if items else {}
    is_result = last.get("type") == "function_call_output"
    return Prompt(
        last_user=last_user_text(body),
        full_text=_full_text(texts, tools_raw),
        messages=len(items),
        tool_result=str(last.get("output", "")) if is_result else None,
        tools=tools,
        tool_choice=_choice(body.get("tool_choice")),
        max_tokens=_int(body.get("max_output_tokens")),
    )


def messages_prompt(body: dict[str, Any]) -> Prompt:
    """Anthropic Messages: ``system``, content blocks, ``tools[].input_schema``."""
    messages = _items(body)
    tools_raw = _list(body.get("tools"))
    tools = tuple(
        ToolSpec(t["name"], t.get("input_schema") or {})
        for t in tools_raw
        if isinstance(t, dict)
        and isinstance(t.get("name"), str)
        and t.get("type") in (None, "custom")
    )
    texts = [_text(body.get("system"))]
    for message in messages:
        texts.append(_text(message.get("content")))
        content = message.get("content")
        if isinstance(content, list):
            texts += [
                json.dumps(b["input"]) for b in content if isinstance(b, dict) and "input" in b
            ]
    last = messages[-1] if messages else {}
    result = _anthropic_tool_result(last.get("content")) if last.get("role") == "user" else None
    return Prompt(
        last_user=last_user_text(body),
        full_text=_full_text(texts, tools_raw),
        messages=len(messages),
        tool_result=result,
        tools=tools,
        tool_choice=_choice(body.get("tool_choice")),
        max_tokens=_int(body.get("max_tokens")),
        stop=_stops(body.get("stop_sequences")),
        output_schema=_output_schema(body.get("output_config")),
    )


def _output_schema(config: Any) -> dict[str, Any] | None:
    """Anthropic `output_config.format` of type json_schema: its schema."""
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else None
    return None
