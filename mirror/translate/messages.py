"""Messages and content blocks between Chat Completions and Anthropic Messages.

Part of `mirror.translate`, whose `request` module holds the table of decisions and the
public functions. Every function here either returns a faithful equivalent or raises
`Untranslatable` naming the path of the first element it cannot express, e.g.
`messages[3].content[1]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from mirror.errors import Untranslatable

JSON = dict[str, Any]

TO_ANTHROPIC = "Anthropic Messages"
TO_CHAT = "Chat Completions"

#: Image types Anthropic accepts in a base64 source.
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
#: Anthropic's pattern for tool-use ids; an OpenAI call id outside it would be refused.
TOOL_USE_ID = re.compile(r"[A-Za-z0-9_-]+")
#: Chat Completions takes the arguments as a JSON string; compact, as the models write them.
_COMPACT = (",", ":")


def present(value: Any) -> bool:
    """Whether a parameter says something: None, [] and {} are the same as leaving it out."""
    return value is not None and value != [] and value != {}


def check_keys(
    obj: Any, path: str, known: Iterable[str], target: str, dropped: Iterable[str] = ()
) -> JSON:
    """Refuse an object with a key (carrying a value) that is neither handled nor harmless."""
    if not isinstance(obj, dict):
        raise Untranslatable(f"{path}: expected an object, got {type(obj).__name__}")
    allowed = {*known, *dropped}
    for key, value in obj.items():
        if key not in allowed and present(value):
            raise Untranslatable(f"{path}.{key}: has no {target} counterpart")
    return obj


def _text_blocks(content: Any, path: str) -> str | list[JSON]:
    """System, developer and tool content for Anthropic: a string, or text parts only."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Untranslatable(f"{path}: expected a string or a list of text parts")
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        where = f"{path}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise Untranslatable(f"{where}: {kind!r} content has no {TO_ANTHROPIC} counterpart")
        check_keys(part, where, ("type", "text"), TO_ANTHROPIC, ("prompt_cache_breakpoint",))
        blocks.append({"type": "text", "text": part["text"]})
    return blocks


# --- Chat Completions -> Anthropic -------------------------------------------------------------


def chat_messages_to_anthropic(
    messages: Any, *, mid_conversation_system: bool
) -> tuple[str | list[JSON] | None, list[JSON]]:
    """Returns the top-level `system` (None when there is none) and the `messages`."""
    if not isinstance(messages, list) or not messages:
        raise Untranslatable("messages: expected a non-empty list")
    leading: list[str | list[JSON]] = []
    out: list[JSON] = []
    after_tool = False
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role in ("system", "developer"):
            check_keys(msg, path, ("role", "content"), TO_ANTHROPIC)
            content = _text_blocks(msg.get("content"), f"{path}.content")
            if not out:
                leading.append(content)
            elif mid_conversation_system:
                out.append({"role": "system", "content": content})
            else:
                raise Untranslatable(
                    f"{path}: a {role} message after the conversation started; Anthropic puts the "
                    "system prompt before all messages (mid-conversation system messages are "
                    "model-specific: enable them for a model that supports them)"
                )
            after_tool = False
        elif role == "user":
            check_keys(msg, path, ("role", "content"), TO_ANTHROPIC)
            content = _user_content(msg.get("content"), path)
            if after_tool:
                # What the app says after tool results shares their turn, as in Anthropic.
                blocks = (
                    [{"type": "text", "text": content}] if isinstance(content, str) else content
                )
                out[-1]["content"].extend(b for b in blocks if b.get("text") != "")
            else:
                out.append({"role": "user", "content": content})
            after_tool = False
        elif role == "assistant":
            out.append(_assistant_to_anthropic(msg, path))
            after_tool = False
        elif role == "tool":
            block = _tool_result_to_anthropic(msg, path)
            # Parallel results belong in one user turn, as Anthropic returns them.
            if after_tool:
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            after_tool = True
        elif role == "function":
            raise Untranslatable(f"{path}: legacy `function` messages are not translated")
        else:
            raise Untranslatable(f"{path}: unknown role {role!r}")
    if not out:
        raise Untranslatable("messages: only system messages; Anthropic needs a user message")
    if out[-1]["role"] == "assistant":
        raise Untranslatable(
            f"messages[{len(messages) - 1}]: a final assistant message would be a prefill "
            "(continued, not answered) in Anthropic Messages"
        )
    return _join_system(leading), out


def _join_system(parts: list[str | list[JSON]]) -> str | list[JSON] | None:
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    blocks: list[JSON] = []
    for part in parts:
        blocks.extend([{"type": "text", "text": part}] if isinstance(part, str) else part)
    return blocks


def _user_content(content: Any, path: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Untranslatable(f"{path}.content: expected a string or a list of parts")
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        where = f"{path}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            check_keys(part, where, ("type", "text"), TO_ANTHROPIC, ("prompt_cache_breakpoint",))
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            check_keys(
                part, where, ("type", "image_url"), TO_ANTHROPIC, ("prompt_cache_breakpoint",)
            )
            blocks.append(_image_to_anthropic(part["image_url"], f"{where}.image_url"))
        elif kind == "input_audio":
            raise Untranslatable(f"{where}: audio input has no Anthropic counterpart")
        elif kind == "file":
            raise Untranslatable(f"{where}: file (PDF) inputs are not translated")
        else:
            raise Untranslatable(f"{where}: unknown content part {kind!r}")
    return blocks


def _image_to_anthropic(image: Any, path: str) -> JSON:
    check_keys(image, path, ("url", "detail"), TO_ANTHROPIC)
    if image.get("detail") not in (None, "auto"):
        raise Untranslatable(
            f"{path}.detail={image['detail']!r}: Anthropic has no image detail setting"
        )
    url = image.get("url")
    if not isinstance(url, str):
        raise Untranslatable(f"{path}.url: expected a string")
    if match := _DATA_URL.fullmatch(url):
        media_type = match.group(1).lower()
        if media_type not in IMAGE_MEDIA_TYPES:
            raise Untranslatable(f"{path}.url: Anthropic does not take {media_type} images")
        source: JSON = {"type": "base64", "media_type": media_type, "data": match.group(2)}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise Untranslatable(f"{path}.url: neither a base64 data: URL nor an http(s) URL")
    return {"type": "image", "source": source}


def _assistant_to_anthropic(msg: JSON, path: str) -> JSON:
    check_keys(msg, path, ("role", "content", "tool_calls"), TO_ANTHROPIC)
    content = msg.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts = [content]
    elif isinstance(content, list):
        for j, part in enumerate(content):
            where = f"{path}.content[{j}]"
            if isinstance(part, dict) and part.get("type") == "refusal":
                raise Untranslatable(f"{where}: a refusal part has no Anthropic counterpart")
            check_keys(part, where, ("type", "text"), TO_ANTHROPIC, ("prompt_cache_breakpoint",))
            if part.get("type") != "text":
                raise Untranslatable(f"{where}: unknown content part {part.get('type')!r}")
            texts.append(part["text"])
    elif content is not None:
        raise Untranslatable(f"{path}.content: expected a string or a list of parts")
    calls = msg.get("tool_calls") or []
    uses = [_tool_call_to_anthropic(c, f"{path}.tool_calls[{k}]") for k, c in enumerate(calls)]
    if isinstance(content, str) and content and not uses:
        return {"role": "assistant", "content": content}
    # Anthropic refuses empty text blocks; an empty text adds nothing to the context.
    blocks = [{"type": "text", "text": t} for t in texts if t] + uses
    if not blocks:
        raise Untranslatable(f"{path}: an empty assistant message (Anthropic requires content)")
    return {"role": "assistant", "content": blocks}


def _tool_call_to_anthropic(call: Any, path: str) -> JSON:
    check_keys(call, path, ("id", "type", "function"), TO_ANTHROPIC)
    if call.get("type") != "function":
        raise Untranslatable(
            f"{path}: {call.get('type')!r} tool calls have no Anthropic counterpart"
        )
    fn = check_keys(call.get("function"), f"{path}.function", ("name", "arguments"), TO_ANTHROPIC)
    raw: Any = fn.get("arguments")
    try:
        arguments = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise Untranslatable(f"{path}.function.arguments: not valid JSON ({exc})") from exc
    if not isinstance(arguments, dict):
        raise Untranslatable(f"{path}.function.arguments: not a JSON object")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not TOOL_USE_ID.fullmatch(call_id):
        raise Untranslatable(f"{path}.id: {call_id!r} is not a valid Anthropic tool_use id")
    return {"type": "tool_use", "id": call_id, "name": fn.get("name"), "input": arguments}


def _tool_result_to_anthropic(msg: JSON, path: str) -> JSON:
    check_keys(msg, path, ("role", "content", "tool_call_id"), TO_ANTHROPIC)
    block: JSON = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id")}
    content = _text_blocks(msg.get("content"), f"{path}.content")
    if content:
        block["content"] = content
    return block


# --- Anthropic -> Chat Completions -------------------------------------------------------------


def anthropic_messages_to_chat(system: Any, messages: Any) -> list[JSON]:
    if not isinstance(messages, list) or not messages:
        raise Untranslatable("messages: expected a non-empty list")
    out: list[JSON] = []
    if present(system) and system != "":
        out.append({"role": "system", "content": _anthropic_text(system, "system")})
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        check_keys(msg, path, ("role", "content"), TO_CHAT)
        role, content = msg.get("role"), msg.get("content")
        if role == "system":
            out.append({"role": "system", "content": _anthropic_text(content, f"{path}.content")})
        elif role == "user":
            out.extend(_user_to_chat(content, path))
        elif role == "assistant":
            out.append(_assistant_to_chat(content, path))
        else:
            raise Untranslatable(f"{path}: unknown role {role!r}")
    if messages[-1].get("role") == "assistant":
        raise Untranslatable(
            f"messages[{len(messages) - 1}]: a final assistant message is a prefill; Chat "
            "Completions would answer it rather than continue it"
        )
    return out


def _anthropic_text(content: Any, path: str) -> str | list[JSON]:
    """System and tool-result content for Chat Completions: a string, or text blocks only."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Untranslatable(f"{path}: expected a string or a list of text blocks")
    return [_anthropic_text_block(block, f"{path}[{j}]") for j, block in enumerate(content)]


def _anthropic_text_block(block: Any, path: str) -> JSON:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind != "text":
        raise Untranslatable(f"{path}: {kind!r} content has no {TO_CHAT} counterpart")
    if present(block.get("citations")):
        raise Untranslatable(f"{path}.citations: has no {TO_CHAT} counterpart")
    check_keys(block, path, ("type", "text", "citations"), TO_CHAT, ("cache_control",))
    return {"type": "text", "text": block["text"]}


def _user_to_chat(content: Any, path: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list) or not content:
        raise Untranslatable(f"{path}.content: expected a string or a non-empty list of blocks")
    results: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(content):
        where = f"{path}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            if parts:
                raise Untranslatable(f"{where}: a tool_result after other user content")
            results.append(_tool_result_to_chat(block, where))
        elif kind == "text":
            parts.append(_anthropic_text_block(block, where))
        elif kind == "image":
            parts.append(_image_to_chat(block, where))
        elif kind == "document":
            raise Untranslatable(f"{where}: document (PDF, text) blocks are not translated")
        else:
            raise Untranslatable(f"{where}: {kind!r} blocks have no {TO_CHAT} counterpart")
    if not parts:
        return results
    if results and len(parts) == 1 and parts[0]["type"] == "text":
        # A follow-up after tool results is a plain user message in Chat Completions.
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _image_to_chat(block: JSON, path: str) -> JSON:
    check_keys(block, path, ("type", "source", "transformations"), TO_CHAT, ("cache_control",))
    if block.get("transformations") not in (None, {}, {"oversized_image": "downsize"}):
        raise Untranslatable(f"{path}.transformations: has no {TO_CHAT} counterpart")
    source: Any = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        check_keys(source, f"{path}.source", ("type", "media_type", "data"), TO_CHAT)
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url":
        check_keys(source, f"{path}.source", ("type", "url"), TO_CHAT)
        url = source.get("url")
    else:
        raise Untranslatable(f"{path}.source: {kind!r} image sources are not translated")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_to_chat(block: JSON, path: str) -> JSON:
    check_keys(
        block, path, ("type", "tool_use_id", "content", "is_error"), TO_CHAT, ("cache_control",)
    )
    if block.get("is_error"):
        raise Untranslatable(
            f"{path}.is_error: Chat Completions cannot mark a tool result as failed"
        )
    content = block.get("content")
    text = "" if content is None else _anthropic_text(content, f"{path}.content")
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _assistant_to_chat(content: Any, path: str) -> JSON:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list) or not content:
        raise Untranslatable(f"{path}.content: expected a string or a non-empty list of blocks")
    texts: list[JSON] = []
    calls: list[JSON] = []
    for j, block in enumerate(content):
        where = f"{path}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if calls:
                raise Untranslatable(f"{where}: text after a tool_use cannot keep its place")
            texts.append(_anthropic_text_block(block, where))
        elif kind == "tool_use":
            calls.append(_tool_use_to_chat(block, where))
        elif kind in ("thinking", "redacted_thinking"):
            raise Untranslatable(f"{where}: {kind} blocks have no {TO_CHAT} counterpart")
        else:
            raise Untranslatable(f"{where}: {kind!r} blocks have no {TO_CHAT} counterpart")
    msg: JSON = {"role": "assistant"}
    if texts:
        msg["content"] = texts[0]["text"] if calls and len(texts) == 1 else texts
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool_use_to_chat(block: JSON, path: str) -> JSON:
    known = ("type", "id", "name", "input", "caller")
    check_keys(block, path, known, TO_CHAT, ("cache_control",))
    if block.get("caller") not in (None, {"type": "direct"}):
        raise Untranslatable(
            f"{path}.caller: programmatic tool calls have no {TO_CHAT} counterpart"
        )
    arguments = json.dumps(block.get("input"), ensure_ascii=False, separators=_COMPACT)
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }
