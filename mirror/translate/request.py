"""Request translation between OpenAI Chat Completions and Anthropic Messages; arm transforms.

A candidate arm on the other provider gets the captured request translated faithfully, or
approximately where the table says "replay:", or not at all: what the target cannot express
raises `Untranslatable(reason)`, and the runner records the arm as skipped with that reason.
Only what does not change what the model is asked (caching hints, storage, billing tiers, opaque
identifiers) is dropped silently.

Approximate translations are for replays only (`notes` given, as `mirror.translate.replay`
does for the runner): a skipped arm is a pair the judge and the triggers never see, while a
near-faithful one is compared, and the pair says what changed (`ArmResult.approximations`, one
fixed note per change, e.g. "json_object as forced tool use") so the pages can leave such pairs
out or show only them. A call a candidate serves to the app (`translate_served_request`, the
live path) is never approximated: without `notes` every "replay:" row below is refused.

Messages and content blocks are converted in `mirror.translate.messages`; tools, output formats
and sampling in `mirror.translate.params`.

The Anthropic side is API version 2026-10-21, the one the anthropic SDK 2.x sends. It has no
sampling parameters at all: `temperature`, `top_p` and `top_k` are a 400 at any value.
Consecutive same-role turns are allowed (the API combines them), so they are kept as they are,
except consecutive `tool` messages, which become one user turn of `tool_result` blocks (with the
user message that follows them, if any).

==============================  ============================  ======================================
Chat Completions                Anthropic Messages            decision
==============================  ============================  ======================================
leading `system`/`developer`    `system`: a string for one    translated; back: one `system` message
messages (strings or text       string message, else text
parts, several)                 blocks in order
`system`/`developer` after the  `{"role": "system"}` message  to Anthropic: refused unless
first user, assistant or tool   at its place                  `mid_conversation_system=True`
message                                                       (model-specific there); back:
                                                              translated
`user`/`assistant` string or    string or text blocks         translated
text-part content
consecutive same-role messages  consecutive turns (the API    kept, but consecutive `tool` messages
                                combines them)                and a user message right after them
                                                              make one user turn
`image_url`, base64 `data:`     `image`, base64 source        translated (jpeg, png, gif, webp;
URL                                                           other types refused)
`image_url`, http(s) URL        `image`, url source           translated
`image_url.detail`              -                             refused (`auto`: dropped, the default)
low/high/original
-                               image file source;            refused
                                `transformations` other than
                                downsize
`input_audio`, `file` parts     `document`, `search_result`   refused
                                blocks
assistant `tool_calls`          `tool_use` blocks             translated; arguments that are not a
(function)                                                    JSON object, ids Anthropic refuses:
                                                              refused
`role: tool` messages           `tool_result` blocks opening  translated; `is_error: true`, non-text
                                a user turn                   results, results after other content:
                                                              refused
-                               assistant text after a        refused (Chat puts text before calls)
                                `tool_use`
`refusal`, `audio`, `name` on   -                             refused
messages; `function` role,
`functions`, `function_call`
a final assistant message       a final assistant message     refused both ways: answered vs
                                (prefill)                     continued
-                               `thinking`,                   refused
                                `redacted_thinking`,
                                server-tool and container
                                blocks, `citations`
`tools` of type `function`      `tools` without `type` (or    translated (`strict` kept); no
                                `custom`)                     `parameters`: empty object schema
`custom` tools;                 server tools,                 refused
`allowed_tools` choice          `allowed_callers`,
                                `defer_loading`,
                                `input_examples`, `caller`
`tool_choice`                   `tool_choice`                 translated
auto/none/required/function     auto/none/any/tool
`parallel_tool_calls: false`    `disable_parallel_tool_use:   translated (`true`, the default:
                                true`                         dropped)
`response_format`               `output_config.format`        translated; `name` dropped (back:
`json_schema` with `strict:     (`json_schema`)               "response")
true`
`json_schema` not strict        `output_config.format`, the   replay: made strict, "json_schema
                                schema with                   made strict" (an object open to other
                                `additionalProperties: false` keys: refused); served: refused
                                on every object
`json_schema` with              -                             refused: it is part of what the model
`description`                                                 is asked, and has no place there
`json_object`                   forced tool `json_output`     replay: "json_object as forced tool
                                (input: any object),          use" (structured outputs need a
                                `tool_choice` that tool       closed schema); the call's input is
                                                              read back as the answer's JSON text;
                                                              beside `tools` or `tool_choice`, and
                                                              served: refused
`reasoning_effort`              `output_config.effort`,       refused: not the same controls
                                `thinking`
`stop` (string or list)         `stop_sequences`              translated; more than 4 to Chat:
                                                              refused
`max_completion_tokens` or      `max_tokens` (required)       translated; none:
`max_tokens`                                                  `default_max_tokens`; back:
                                                              `max_completion_tokens`; 0: refused
`temperature`, `top_p`          - (2026-10-21)                per `sampling` below; back: copied
                                                              (0..1 fits in 0..2)
-                               `top_k`                       replay: "top_k not sent" (Chat has
                                                              none); served: refused
`stream`; `stream_options`      `stream` (usage is always     translated; back: `include_usage:
                                streamed)                     true` added
`safety_identifier` or `user`   `metadata.user_id`            translated (back: `user`)
`n` > 1, `logit_bias`,          -                             refused (`n: 1`, `0`, text only,
penalties other than 0,                                       medium: dropped)
`modalities` other than text,
`verbosity` other than medium,
`audio`, `moderation`,
`web_search_options`
`logprobs`, `top_logprobs`      -                             dropped: they annotate the answer
                                                              without changing it, and the
                                                              comparison does not use them
`seed`                          -                             dropped: repeatability of one
                                                              provider's sampling; no seed carries
                                                              across providers
`prediction`                    -                             dropped: a latency hint; the output
                                                              does not depend on it
`store`, `metadata`,            `cache_control`,              dropped: storage, caching, capacity,
`service_tier`,                 `service_tier`, `speed`,      attribution
`prompt_cache_*`                `inference_geo`,
                                `diagnostics`,
                                `user_profile_id`,
                                `workspace_id`
-                               `container`                   refused
any other parameter             any other parameter           refused as unknown
==============================  ============================  ======================================

==================  ================================================================================
sampling            Chat Completions `temperature` and `top_p` towards Anthropic
==================  ================================================================================
`approximate`       absent, null or 1 (the neutral value, the same as not sending it): not sent;
(default)           any other value: replay: not sent, "temperature not sent" / "top_p not sent"
                    (the target has no sampling parameters, so this is the closest request there
                    is); served: `Untranslatable`
`refuse`            absent, null or 1: not sent; any other value: `Untranslatable`, for an arm
                    whose pairs must all be faithful
`drop`              never sent, nothing noted: the arm accepts the target's own sampling, as an app
                    migrated to Anthropic would have to
`keep`              sent as they are (`temperature` above 1 refused, never clamped): for a runner
                    that pins `anthropic-version: 2023-06-01` for a model that still honours them
                    (SDK 2.x: `extra_body`); both set: replay: `temperature` only, "top_p not sent
                    (temperature kept)", as current Claude models take one of the two; served:
                    both, as asked
==================  ================================================================================

Why `approximate` is the default (it was `refuse`): on 2026-10-21 no sampling value can be sent,
so "reduced to one" means reduced to none, and refusing skipped every replay of a request that
tuned its sampling (a quarter of the demo mix's cross-provider pairs). A replay without the
value is the request the candidate would get once migrated, the pair says what was left out,
and the pages can leave such pairs out; a call the candidate serves to the app is still refused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from mirror.errors import ConfigError, Untranslatable
from mirror.events import Api
from mirror.migrations import RESERVED_PARAMS, ArmSettings
from mirror.translate.messages import (
    JSON,
    anthropic_messages_to_chat,
    chat_messages_to_anthropic,
    present,
)
from mirror.translate.params import (
    Notes,
    SamplingPolicy,
    anthropic_output_config_to_chat,
    anthropic_tool_choice_to_chat,
    anthropic_tools_to_chat,
    chat_max_tokens,
    chat_response_format_to_anthropic,
    chat_sampling_to_anthropic,
    chat_tool_choice_to_anthropic,
    chat_tools_to_anthropic,
    json_object_tool,
    screen_anthropic,
    screen_chat,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "RESERVED_PARAMS",
    "SamplingPolicy",
    "SystemMode",
    "anthropic_to_openai_chat",
    "apply_arm_transforms",
    "openai_chat_to_anthropic",
    "translate_request",
]

SystemMode = Literal["replace", "prepend", "append"]

#: Anthropic requires `max_tokens`; used when the Chat Completions request set no limit.
DEFAULT_MAX_TOKENS = 4096
#: Chat Completions takes at most this many stop sequences.
MAX_CHAT_STOP = 4
#: Joins an arm's text to an existing system prompt (`prepend`/`append`).
SYSTEM_JOINER = "\n\n"


@contextmanager
def _malformed() -> Iterator[None]:
    """A body of an unexpected shape is a reason to skip the arm, not a crash of the runner."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise Untranslatable(f"malformed request: {type(exc).__name__}: {exc}") from exc


def openai_chat_to_anthropic(
    body: dict[str, Any],
    *,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    sampling: SamplingPolicy = "approximate",
    mid_conversation_system: bool = False,
    notes: Notes = None,
) -> dict[str, Any]:
    """A Chat Completions request body as an Anthropic Messages body for `model`; approximately
    where the table says so when `notes` is a list (each change appended to it)."""
    with _malformed():
        screen_chat(body)
        system, messages = chat_messages_to_anthropic(
            copy.deepcopy(body.get("messages")), mid_conversation_system=mid_conversation_system
        )
        out: JSON = {"model": model, "max_tokens": chat_max_tokens(body, default_max_tokens)}
        if system is not None:
            out["system"] = system
        out["messages"] = messages
        tools = body.get("tools")
        if present(tools):
            out["tools"] = chat_tools_to_anthropic(copy.deepcopy(tools))
        choice = chat_tool_choice_to_anthropic(
            copy.deepcopy(body.get("tool_choice")), body.get("parallel_tool_calls"), present(tools)
        )
        if choice is not None:
            out["tool_choice"] = choice
        stop: Any = body.get("stop")
        if present(stop):
            out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        fmt: Any = body.get("response_format")
        if present(fmt):
            output_config = chat_response_format_to_anthropic(fmt, notes)
            if output_config is not None:
                out["output_config"] = output_config
            elif fmt.get("type") == "json_object":
                out["tools"], out["tool_choice"] = json_object_tool(body, notes)
        out.update(chat_sampling_to_anthropic(body, sampling, notes))
        if body.get("stream"):
            out["stream"] = True
        user_id = body.get("safety_identifier") or body.get("user")
        if user_id:
            out["metadata"] = {"user_id": user_id}
        return out


def anthropic_to_openai_chat(
    body: dict[str, Any], *, model: str, notes: Notes = None
) -> dict[str, Any]:
    """An Anthropic Messages request body as a Chat Completions body for `model`; approximately
    where the table says so when `notes` is a list (each change appended to it)."""
    with _malformed():
        screen_anthropic(body, notes)
        messages = anthropic_messages_to_chat(
            copy.deepcopy(body.get("system")), copy.deepcopy(body.get("messages"))
        )
        out: JSON = {"model": model, "messages": messages}
        max_tokens = body.get("max_tokens")
        if max_tokens == 0:
            raise Untranslatable(
                "max_tokens=0: cache pre-warming has no Chat Completions counterpart"
            )
        if max_tokens is not None:
            out["max_completion_tokens"] = max_tokens
        tools = body.get("tools")
        if present(tools):
            out["tools"] = anthropic_tools_to_chat(copy.deepcopy(tools))
        choice, parallel = anthropic_tool_choice_to_chat(
            copy.deepcopy(body.get("tool_choice")), present(tools)
        )
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
        stop: Any = body.get("stop_sequences")
        if present(stop):
            if len(stop) > MAX_CHAT_STOP:
                raise Untranslatable(
                    f"stop_sequences: Chat Completions takes at most {MAX_CHAT_STOP}"
                )
            out["stop"] = list(stop)
        output_config: Any = body.get("output_config")
        if present(output_config):
            out.update(anthropic_output_config_to_chat(output_config))
        for key in ("temperature", "top_p"):
            if body.get(key) is not None:
                out[key] = body[key]
        if body.get("stream"):
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and metadata.get("user_id"):
            out["user"] = metadata["user_id"]
        return out


def translate_request(
    body: dict[str, Any],
    *,
    source: Api,
    target: Api,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    sampling: SamplingPolicy = "approximate",
    mid_conversation_system: bool = False,
    notes: Notes = None,
) -> dict[str, Any]:
    """`body` (in `source`'s dialect) as a `target` request for `model`.

    The same dialect is copied with `model` replaced; Chat Completions and Anthropic Messages
    are translated both ways; any other pair raises `Untranslatable`. Without `notes` the
    translation is faithful or refused; with a list, what the table translates approximately
    is, and each change is appended to it (`mirror.translate.replay`, the runner's entry).
    """
    if source is target:
        out = copy.deepcopy(body)
        out["model"] = model
        return out
    if source is Api.OPENAI_CHAT and target is Api.ANTHROPIC_MESSAGES:
        return openai_chat_to_anthropic(
            body,
            model=model,
            default_max_tokens=default_max_tokens,
            sampling=sampling,
            mid_conversation_system=mid_conversation_system,
            notes=notes,
        )
    if source is Api.ANTHROPIC_MESSAGES and target is Api.OPENAI_CHAT:
        return anthropic_to_openai_chat(body, model=model, notes=notes)
    raise Untranslatable(f"no translation from {source.value} to {target.value}")


def arm_variant(body: dict[str, Any], dialect: Api, arm: ArmSettings) -> dict[str, Any]:
    """`body` with `arm`'s prompt variant and parameters (`apply_arm_transforms`); `body` itself
    when the arm has neither."""
    prompt = arm.system_prompt
    if prompt is None and not arm.params:
        return body
    return apply_arm_transforms(
        body,
        dialect=dialect,
        system_prompt=prompt.text if prompt else None,
        system_mode=prompt.mode if prompt else "replace",
        params=arm.params,
    )


def apply_arm_transforms(
    body: dict[str, Any],
    *,
    dialect: Api,
    system_prompt: str | None = None,
    system_mode: SystemMode = "replace",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An arm's prompt variant applied to a copy of `body`, a request in `dialect`.

    The system prompt is the leading `system`/`developer` messages (Chat Completions), the
    top-level `system` (Anthropic) or `instructions` (Responses). `replace` puts `system_prompt`
    in their place; `prepend`/`append` join it to the first/last of them with a blank line.
    Without a system prompt all three modes add one. Later (mid-conversation) system messages
    are left alone. Each `params` item sets a top-level key, or removes it when the value is
    None; in Chat Completions `max_tokens` and `max_completion_tokens` are one setting, so
    setting either removes the other. Embeddings take no system prompt (`Untranslatable`).
    """
    out = copy.deepcopy(body)
    if system_prompt is not None:
        if dialect is Api.OPENAI_CHAT:
            _chat_system(out, system_prompt, system_mode)
        elif dialect is Api.ANTHROPIC_MESSAGES:
            out["system"] = _merged(out.get("system"), system_prompt, system_mode)
        elif dialect is Api.OPENAI_RESPONSES:
            out["instructions"] = _merged(out.get("instructions"), system_prompt, system_mode)
        else:
            raise Untranslatable(f"{dialect.value} requests have no system prompt")
    for key, value in (params or {}).items():
        if key in RESERVED_PARAMS:
            raise ConfigError(f"params.{key}: set by the runner or by system_prompt, not params")
        if dialect is Api.ANTHROPIC_MESSAGES and key == "max_tokens" and value is None:
            raise ConfigError("params.max_tokens: required by Anthropic Messages")
        if dialect is Api.OPENAI_CHAT and key in ("max_tokens", "max_completion_tokens"):
            out.pop("max_tokens", None)
            out.pop("max_completion_tokens", None)
        if value is None:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _chat_system(body: JSON, text: str, mode: SystemMode) -> None:
    messages: list[JSON] = body.setdefault("messages", [])
    count = 0
    while count < len(messages) and messages[count].get("role") in ("system", "developer"):
        count += 1
    if count == 0 or mode == "replace":
        role = messages[0]["role"] if count else "system"
        messages[:count] = [{"role": role, "content": text}]
        return
    target = messages[0] if mode == "prepend" else messages[count - 1]
    target["content"] = _merged(target.get("content"), text, mode)


def _merged(existing: Any, text: str, mode: SystemMode) -> Any:
    """`text` in place of, before or after a system prompt (a string or a list of text parts)."""
    if mode == "replace" or not existing:
        return text
    if isinstance(existing, str):
        return (
            text + SYSTEM_JOINER + existing
            if mode == "prepend"
            else existing + SYSTEM_JOINER + text
        )
    blocks = list(existing)
    indices = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("type") == "text"]
    if not indices:
        new = {"type": "text", "text": text}
        return [new, *blocks] if mode == "prepend" else [*blocks, new]
    i = indices[0] if mode == "prepend" else indices[-1]
    blocks[i] = {**blocks[i], "text": _merged(blocks[i]["text"], text, mode)}
    return blocks
