"""The stream translator fed real provider streams cut anywhere, and what it refuses mid-stream.

Source streams come from the simulated providers (the bytes a candidate would send); a
translation must not depend on where the network cut them, CRLF line endings included.
"""

from __future__ import annotations

import random
from typing import Any

import httpx2
import orjson
import pytest

from mirror.errors import TruncatedStream, Untranslatable
from mirror.events import Api
from mirror.translate.sse import encode
from mirror.translate.stream import StreamTranslator
from tests.mirror.translate.conftest import CHAT, MESSAGES, Bridge

JSON = dict[str, Any]


def source_stream(bridge: Bridge, api: Api, reply: str, **headers: str) -> bytes:
    """The raw SSE bytes the `api` fake streams for the scripted `reply`."""
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    if api is MESSAGES:
        url = f"{bridge.anthropic_url}/v1/messages"
        body: JSON = {"model": "claude", "max_tokens": 256, "messages": ask, "stream": True}
        headers |= {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    else:
        url = f"{bridge.openai_url}/v1/chat/completions"
        body = {"model": "gpt", "messages": ask, "stream": True}
        body["stream_options"] = {"include_usage": True}
        headers |= {"authorization": "Bearer k"}
    headers["x-test-reply"] = reply
    response = httpx2.post(url, json=body, headers=headers)
    assert response.status_code == 200
    return response.content


def translator(source: Api) -> StreamTranslator:
    target = CHAT if source is MESSAGES else MESSAGES
    return StreamTranslator(source=source, target=target, model="m", include_usage=True, created=1)


def translate(source: Api, chunks: list[bytes]) -> bytes:
    t = translator(source)
    out = b"".join(t.feed(chunk) for chunk in chunks) + t.close()
    assert t.complete
    return out


def chat_text(stream: bytes) -> str:
    chunks = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line[:7] == b"data: {"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def random_split(data: bytes, rng: random.Random) -> list[bytes]:
    chunks: list[bytes] = []
    i = 0
    while i < len(data):
        step = rng.choice((1, 2, 3, 7, rng.randint(1, 64)))
        chunks.append(data[i : i + step])
        i += step
    return chunks


@pytest.mark.parametrize("source", [MESSAGES, CHAT])
@pytest.mark.parametrize("reply", ["text", "text+tool", "tools"])
def test_any_chunking_gives_the_same_translation(bridge: Bridge, source: Api, reply: str) -> None:
    raw = source_stream(bridge, source, reply)
    whole = translate(source, [raw])
    assert whole.endswith(b"data: [DONE]\n\n" if source is MESSAGES else b'message_stop"}\n\n')
    assert translate(source, [raw[i : i + 1] for i in range(len(raw))]) == whole
    crlf = raw.replace(b"\n", b"\r\n")
    for seed in range(4):
        rng = random.Random(seed)
        assert translate(source, random_split(raw, rng)) == whole, seed
        assert translate(source, random_split(crlf, rng)) == whole, seed


def test_a_multibyte_character_split_between_chunks_comes_out_whole(bridge: Bridge) -> None:
    raw = source_stream(bridge, MESSAGES, "text")
    cut = raw.index("日".encode()) + 1
    out = translate(MESSAGES, [raw[:cut], raw[cut:]])
    assert "日本語 🎉" in chat_text(out)


@pytest.mark.parametrize("source", [MESSAGES, CHAT])
def test_a_source_cut_short_is_not_ended_cleanly(bridge: Bridge, source: Api) -> None:
    raw = source_stream(bridge, source, "text", **{"x-fake-stream-error": "clean"})
    t = translator(source)
    out = t.feed(raw)
    assert out and b"[DONE]" not in out and b"message_stop" not in out
    assert not t.complete
    with pytest.raises(TruncatedStream):
        t.close()


@pytest.mark.parametrize("source", [MESSAGES, CHAT])
def test_a_relayed_error_ends_the_stream(bridge: Bridge, source: Api) -> None:
    raw = source_stream(bridge, source, "text", **{"x-fake-stream-error": "event"})
    t = translator(source)
    out = t.feed(raw)
    assert t.complete and t.close() == b""
    last = out.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    if source is MESSAGES:
        assert last.startswith(b'data: {"error"')
        assert orjson.loads(last.removeprefix(b"data: "))["error"]["code"] == "overloaded_error"
    else:
        assert last.startswith(b"event: error\ndata: ")
    assert t.feed(encode({"type": "message_stop"}, event="message_stop")) == b""


def anthropic_events(*events: JSON) -> bytes:
    return b"".join(encode(e, event=e["type"]) for e in events)


MESSAGE_START: JSON = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    },
}


def block_start(index: int, block: JSON) -> JSON:
    return {"type": "content_block_start", "index": index, "content_block": block}


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        (
            [block_start(0, {"type": "thinking", "thinking": "", "signature": ""})],
            "content[0]: 'thinking' blocks",
        ),
        (
            [block_start(0, {"type": "redacted_thinking", "data": "x"})],
            "content[0]: 'redacted_thinking' blocks",
        ),
        (
            [
                block_start(0, {"type": "text", "text": ""}),
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "citations_delta", "citation": {}},
                },
            ],
            "content[0].citations",
        ),
        (
            [
                block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
                block_start(1, {"type": "text", "text": ""}),
            ],
            "content[1]: text after a tool_use",
        ),
        (
            [{"type": "message_delta", "delta": {"stop_reason": "pause_turn"}, "usage": {}}],
            "stop_reason='pause_turn'",
        ),
    ],
)
def test_untranslatable_anthropic_events_raise_where_they_appear(
    events: list[JSON], reason: str
) -> None:
    t = translator(MESSAGES)
    first = t.feed(anthropic_events(MESSAGE_START))
    assert b'"role":"assistant"' in first  # already sent: it cannot be taken back
    with pytest.raises(Untranslatable) as caught:
        t.feed(anthropic_events(*events))
    assert reason in caught.value.reason
    with pytest.raises(Untranslatable):
        t.feed(b"event: ping\ndata: {}\n\n")
    assert t.close() == b""  # the failure was raised already; nothing is made up


def chat_chunk(delta: JSON, finish: str | None = None, **extra: Any) -> JSON:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt",
        "choices": [choice],
        **extra,
    }


def call(index: int, call_id: str | None, arguments: str) -> JSON:
    function: JSON = {"arguments": arguments}
    item: JSON = {"index": index, "function": function}
    if call_id is not None:
        item |= {"id": call_id, "type": "function"}
        function["name"] = "f"
    return {"tool_calls": [item]}


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        ([chat_chunk({"refusal": "I can't"})], "choices[0].delta.refusal"),
        (
            [{**chat_chunk({"content": "a"}), "choices": [{"index": 1, "delta": {}}]}],
            "choices[0]: more than one choice",
        ),
        (
            [
                {
                    **chat_chunk({"content": "a"}),
                    "choices": [{"index": 0, "delta": {}, "logprobs": {"content": []}}],
                }
            ],
            "choices[0].logprobs",
        ),
        (
            [
                chat_chunk(call(0, "call_a", "{}")),
                chat_chunk(call(1, "call_b", "{")),
                chat_chunk(call(0, None, "}")),
            ],
            "arguments of an earlier tool call",
        ),
        (
            [chat_chunk(call(0, "call_a", "[1]"), "tool_calls")],
            "tool_calls[0].function.arguments: not a JSON object",
        ),
        ([chat_chunk({"content": "a"}, "stop")], "usage: the stream carried none"),
    ],
)
def test_untranslatable_chat_chunks_raise_where_they_appear(
    chunks: list[JSON], reason: str
) -> None:
    t = translator(CHAT)
    first = t.feed(encode(chat_chunk({"role": "assistant", "content": ""})))
    assert first.startswith(b"event: message_start\n")
    data = b"".join(encode(c) for c in chunks) + b"data: [DONE]\n\n"
    with pytest.raises(Untranslatable) as caught:
        t.feed(data)
    assert reason in caught.value.reason


def test_a_forced_tool_call_that_ends_with_stop_is_tool_use() -> None:
    t = translator(CHAT)
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    data = [
        chat_chunk(call(0, "call_a", '{"x":1}')),
        chat_chunk({}, "stop"),
        {**chat_chunk({}), "choices": [], "usage": usage},
    ]
    out = t.feed(b"".join(encode(c) for c in data) + b"data: [DONE]\n\n")
    assert b'"stop_reason":"tool_use"' in out and t.complete


def test_an_oversized_event_is_refused() -> None:
    t = StreamTranslator(source=MESSAGES, target=CHAT, model="m", max_event_size=1024)
    with pytest.raises(Untranslatable, match="larger than 1024 bytes"):
        t.feed(b"event: message_start\ndata: " + b"x" * 2000)


def test_the_same_api_passes_through() -> None:
    t = StreamTranslator(source=CHAT, target=CHAT, model="m")
    assert t.feed(b'data: {"a') == b'data: {"a' and t.close() == b""
