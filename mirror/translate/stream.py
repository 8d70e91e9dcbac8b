"""Streamed answers translated between Anthropic Messages and Chat Completions, as they arrive.

`StreamTranslator` is sans-I/O, in the manner of h11: the sidecar feeds it the candidate's
bytes as they come (split anywhere, see `mirror.translate.sse`) and writes what `feed` returns
to the app; `close()` says whether the source ended properly. The field-level decisions are
`mirror.translate.response`'s table; this module adds the order of events.

Anthropic events → Chat Completions chunks:

=========================================  ===================================================
`message_start`                            the first chunk: `delta {role: assistant,
                                           content: ""}`
`content_block_start` text                 nothing (its text, if any, as `delta.content`)
`text_delta`                               `delta.content`
`content_block_start` tool_use             `delta.tool_calls[{index, id, type: function,
                                           function: {name, arguments: ""}}]`, indices from 0
`input_json_delta`                         `delta.tool_calls[{index, function: {arguments}}]`
`content_block_stop`                       nothing; for a call whose input had no fragment,
                                           `arguments: "{}"`
`message_delta`                            a chunk with `delta {}` and the `finish_reason`
`message_stop`                             the usage chunk (`choices: []`) when the app asked
                                           for `stream_options.include_usage` (and then
                                           `usage: null` on every chunk before it, as OpenAI
                                           does), then `data: [DONE]`
`ping`, event types unknown today          nothing (Anthropic's versioning asks clients to
                                           ignore new event types)
`error`                                    `data: {"error": {message, type: server_error,
                                           code: <Anthropic's type>}}`, on which the openai
                                           SDK raises `APIError`; nothing after it
thinking, server tool, citations …         `Untranslatable` where the block starts
=========================================  ===================================================

Chat Completions chunks → Anthropic events:

=========================================  ===================================================
the first chunk                            `message_start` (`usage` 0/0: Chat reports usage
                                           only at the end; the `message_delta` totals then
                                           replace it, as Anthropic's own do)
`delta.content`                            a text block (`content_block_start`,
                                           `text_delta`s), opened at need
`delta.tool_calls` with an `id`            the open block closed, a `tool_use` block started
                                           (its `arguments` fragments as `input_json_delta`)
`finish_reason`                            the open block closed (a call's whole arguments
                                           checked to be a JSON object)
the usage chunk (`choices: []`)            kept for `message_delta`
`data: [DONE]`                             `message_delta` (`stop_reason`, usage) and
                                           `message_stop`
`data: {"error": …}`                       `event: error` (`api_error` with OpenAI's message),
                                           on which the anthropic SDK raises; nothing after it
interleaved tool-call fragments, refusal,  `Untranslatable` where it appears
more than one choice, logprobs
=========================================  ===================================================

A Chat stream without usage cannot end as an Anthropic one (`message_delta` must report
it): `translate_request` always asks for it (`stream_options.include_usage`), and without it
`[DONE]` raises `Untranslatable`.

Failures. `Untranslatable` is raised by the `feed` call whose bytes hold the offending event;
the bytes of that call translated before it are not returned, and what earlier calls returned
has been sent and cannot be taken back, so the caller cuts the client's stream there (its SDK
sees a broken stream, not a made-up end) and counts the call. After it every `feed` raises
again. When the source ends without its terminal event (`message_stop`, `[DONE]`) nothing is
made up either: `close()` raises `TruncatedStream`, and the caller cuts the client's stream
the same way. Anything after the terminal event (or a relayed error) is ignored.
"""

from __future__ import annotations

import time
from typing import Protocol

from mirror.errors import TruncatedStream, Untranslatable
from mirror.events import Api
from mirror.translate.response import malformed
from mirror.translate.sse import MAX_EVENT_SIZE, Event, EventDecoder
from mirror.translate.stream_to_chat import MessagesToChat
from mirror.translate.stream_to_messages import ChatToMessages

__all__ = ["StreamTranslator"]


class _Direction(Protocol):
    done: bool

    def event(self, event: Event) -> bytes: ...


class StreamTranslator:
    """A `source` SSE stream turned into `target`'s, fed as it arrives; see the module docs.

    `model` is the model to report (the one answering); `include_usage` is whether the app's
    Chat Completions request set `stream_options.include_usage` (ignored towards Anthropic,
    whose streams always carry usage); `created` (Chat Completions) is the time the
    translator was made unless given. The same API on both sides passes bytes through.
    """

    def __init__(
        self,
        *,
        source: Api,
        target: Api,
        model: str,
        include_usage: bool = False,
        created: int | None = None,
        max_event_size: int = MAX_EVENT_SIZE,
    ) -> None:
        self._direction: _Direction | None
        if source is target:
            self._direction = None
        elif source is Api.ANTHROPIC_MESSAGES and target is Api.OPENAI_CHAT:
            stamp = int(time.time()) if created is None else created
            self._direction = MessagesToChat(model, include_usage, stamp)
        elif source is Api.OPENAI_CHAT and target is Api.ANTHROPIC_MESSAGES:
            self._direction = ChatToMessages(model)
        else:
            raise Untranslatable(f"no translation from {source.value} to {target.value}")
        self._decoder = EventDecoder(max_event_size=max_event_size)
        self._failed: Untranslatable | None = None

    @property
    def complete(self) -> bool:
        """Whether the source's terminal event (or an error, relayed) has been translated."""
        return self._direction is None or self._direction.done

    def feed(self, chunk: bytes) -> bytes:
        """The target-API bytes `chunk` completes (often b""); raises `Untranslatable`."""
        if self._failed is not None:
            raise Untranslatable(self._failed.reason)
        if self._direction is None:
            return chunk
        if self._direction.done:
            return b""
        out: list[bytes] = []
        try:
            for event in self._decoder.feed(chunk):
                with malformed("stream event"):
                    out.append(self._direction.event(event))
                if self._direction.done:
                    break
        except Untranslatable as exc:
            self._failed = exc
            raise
        return b"".join(out)

    def close(self) -> bytes:
        """After the source's last byte: b"", or `TruncatedStream` if it ended early."""
        if self._failed is None and not self.complete:
            raise TruncatedStream("the source stream ended without its terminal event")
        return b""
