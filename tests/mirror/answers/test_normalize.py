"""Normalisation of provider answers: bodies, streams, errors, TTFT."""

from __future__ import annotations

import gzip
import json
from typing import Any

from mirror.answers.bodies import parse_json_text
from mirror.answers.normalize import Answer, normalize_answer
from mirror.events import Api, ErrorKind, FinishReason

SSE = [(b"content-type", b"text/event-stream")]
JSON = [(b"content-type", b"application/json")]


def answer(
    api: Api,
    chunks: list[bytes],
    *,
    status: int = 200,
    headers: Any = JSON,
    times: list[float] | None = None,
    **extra: Any,
) -> Answer:
    return Answer(
        api=api,
        provider="p",
        status_code=status,
        headers=headers,
        chunks=chunks,
        chunk_times=times if times is not None else [1.0 + i * 0.1 for i in range(len(chunks))],
        started=1.0,
        ended=2.0,
        **extra,
    )


def sse(*events: tuple[str | None, Any]) -> bytes:
    out = b""
    for name, data in events:
        if name:
            out += f"event: {name}\n".encode()
        payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        out += f"data: {payload}\n\n".encode()
    return out


def test_chat_body_with_tool_call_and_cached_usage() -> None:
    body = {
        "id": "c",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    result = normalize_answer(answer(Api.OPENAI_CHAT, [json.dumps(body).encode()]))
    assert result.ok and result.model == "gpt-4o-2024-08-06" and not result.stream
    assert result.latency_ms == 1000.0
    assert result.output is not None
    assert result.output.finish_reason is FinishReason.TOOL_CALLS
    assert result.output.tool_calls[0].name == "get_weather"
    assert result.output.tool_calls[0].arguments == '{"city":"Oslo"}'
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (10, 5)
    assert result.usage.cached_tokens == 0


def test_gzip_body_is_decoded_for_capture() -> None:
    body = {
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
    }
    raw = gzip.compress(json.dumps(body).encode())
    headers = [*JSON, (b"content-encoding", b"gzip")]
    result = normalize_answer(answer(Api.OPENAI_CHAT, [raw[:10], raw[10:]], headers=headers))
    assert result.output is not None and result.output.text == "hi"


def test_error_bodies_keep_provider_type() -> None:
    openai_err = json.dumps({"error": {"message": "slow down", "type": "rate_limit_error"}})
    result = normalize_answer(answer(Api.OPENAI_CHAT, [openai_err.encode()], status=429))
    assert result.error is not None and result.error.kind is ErrorKind.HTTP
    assert result.error.type == "rate_limit_error" and not result.ok
    anth = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    result = normalize_answer(answer(Api.ANTHROPIC_MESSAGES, [anth.encode()], status=529))
    assert result.error is not None and result.error.type == "overloaded_error"
    result = normalize_answer(answer(Api.ANTHROPIC_MESSAGES, [b"<html>bad gateway"], status=502))
    assert result.error is not None and "bad gateway" in result.error.message


def test_invalid_json_success_is_an_error_not_an_exception() -> None:
    result = normalize_answer(answer(Api.OPENAI_CHAT, [b"\xff\xfe not json"]))
    assert result.error is not None and result.output is None


def test_anthropic_body() -> None:
    body = {
        "model": "claude-x",
        "stop_reason": "end_turn",
        "content": [
            {"type": "text", "text": '```json\n{"a": 1}\n```'},
            {"type": "tool_use", "id": "tu", "name": "f", "input": {"x": [1, 2]}},
        ],
        "usage": {"input_tokens": 0, "output_tokens": 7, "cache_read_input_tokens": 3},
    }
    result = normalize_answer(answer(Api.ANTHROPIC_MESSAGES, [json.dumps(body).encode()]))
    assert result.output is not None and result.usage is not None
    assert result.output.parsed_json == {"a": 1}
    assert result.output.finish_reason is FinishReason.STOP
    assert result.output.tool_calls[0].arguments == '{"x":[1,2]}'
    assert result.usage.input_tokens == 0 and result.usage.cached_tokens == 3


def test_responses_and_embeddings_bodies() -> None:
    body = {
        "model": "gpt-5",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [
            {"type": "reasoning"},
            {
                "type": "message",
                "content": [
                    {"type": "output_text", "text": "par"},
                    {"type": "output_text", "text": "tial"},
                ],
            },
        ],
        "usage": {
            "input_tokens": 3,
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 4},
        },
    }
    result = normalize_answer(answer(Api.OPENAI_RESPONSES, [json.dumps(body).encode()]))
    assert result.output is not None and result.output.text == "partial"
    assert result.output.finish_reason is FinishReason.LENGTH
    assert result.usage is not None and result.usage.reasoning_tokens == 4
    emb = {
        "model": "e",
        "data": [{"embedding": "AAAAAAAAAAA="}, {"embedding": "AAAAAAAAAAA="}],
        "usage": {"prompt_tokens": 2},
    }
    result = normalize_answer(answer(Api.OPENAI_EMBEDDINGS, [json.dumps(emb).encode()]))
    assert result.output is not None and result.output.embeddings is not None
    assert result.output.embeddings.count == 2 and result.output.embeddings.dimensions == 2
    assert result.output.embeddings.encoding == "base64"


def test_chat_stream_reassembly_and_ttft() -> None:
    role = {
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        "usage": None,
    }
    words = [
        {
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": w}}],
            "usage": None,
            "obfuscation": "x" * i,
        }
        for i, w in enumerate(["Hé", "llo"])
    ]
    tool = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "t", "function": {"name": "f", "arguments": '{"a"'}}
                    ]
                },
            }
        ],
    }
    tool2 = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
                "finish_reason": "tool_calls",
            }
        ],
    }
    usage = {"model": "m", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}
    stream = sse(
        (None, role),
        (None, words[0]),
        (None, words[1]),
        (None, tool),
        (None, tool2),
        (None, usage),
        (None, "[DONE]"),
    )
    # Split inside the two-byte "é" to check incremental decoding.
    cut = stream.index("é".encode()) + 1
    chunks = [stream[:cut], stream[cut:]]
    result = normalize_answer(answer(Api.OPENAI_CHAT, chunks, headers=SSE, times=[1.25, 1.5]))
    assert result.stream and result.error is None
    assert result.output is not None and result.output.text == "Héllo"
    assert result.output.tool_calls[0].arguments == '{"a":1}'
    assert result.output.finish_reason is FinishReason.TOOL_CALLS
    assert result.usage is not None and result.usage.output_tokens == 2
    # The first content arrives in the second chunk (the "é" completes there).
    assert result.ttft_ms == 500.0


def test_stream_without_terminal_event_is_incomplete() -> None:
    chunk = {"model": "m", "choices": [{"index": 0, "delta": {"content": "hal"}}]}
    result = normalize_answer(answer(Api.OPENAI_CHAT, [sse((None, chunk))], headers=SSE))
    assert result.error is not None and result.error.kind is ErrorKind.INCOMPLETE
    assert result.output is not None and result.output.text == "hal"


def test_anthropic_stream_with_tool_and_midstream_error() -> None:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"model": "claude", "usage": {"input_tokens": 12, "output_tokens": 1}},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me "},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "check."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "tu1", "name": "lookup", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"x"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 30},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    chunks = [sse(e) for e in events]
    result = normalize_answer(answer(Api.ANTHROPIC_MESSAGES, chunks, headers=SSE))
    assert result.error is None and result.output is not None and result.usage is not None
    assert result.output.text == "Let me check."
    assert result.output.tool_calls[0].name == "lookup"
    assert json.loads(result.output.tool_calls[0].arguments) == {"q": "x"}
    assert result.output.finish_reason is FinishReason.TOOL_CALLS
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 30)
    assert result.ttft_ms is not None and abs(result.ttft_ms - 300.0) < 1e-6

    broken = [
        *chunks[:4],
        sse(
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            )
        ),
    ]
    result = normalize_answer(answer(Api.ANTHROPIC_MESSAGES, broken, headers=SSE))
    assert result.status_code == 200 and not result.ok
    assert result.error is not None and result.error.kind is ErrorKind.STREAM
    assert result.error.type == "overloaded_error"


def test_responses_stream_uses_completed_event() -> None:
    final = {
        "model": "gpt-5",
        "status": "completed",
        "output": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}],
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    events = [
        (
            "response.created",
            {"type": "response.created", "sequence_number": 0, "response": {"model": "gpt-5"}},
        ),
        (
            "response.function_call_arguments.delta",
            {
                "type": "response.function_call_arguments.delta",
                "sequence_number": 1,
                "item_id": "i",
                "delta": "{}",
            },
        ),
        (
            "response.completed",
            {"type": "response.completed", "sequence_number": 2, "response": final},
        ),
    ]
    result = normalize_answer(answer(Api.OPENAI_RESPONSES, [sse(*events)], headers=SSE))
    assert result.error is None and result.output is not None
    assert result.output.finish_reason is FinishReason.TOOL_CALLS
    assert result.output.tool_calls[0].id == "c1"
    assert result.ttft_ms == 0.0


def test_parse_json_text() -> None:
    assert parse_json_text(' {"a": [1]} ') == {"a": [1]}
    assert parse_json_text("```json\n[1, 2]\n```") == [1, 2]
    assert parse_json_text('```\n{"k": true}\n```\n') == {"k": True}
    assert parse_json_text('The answer is {"a": 1}') is None
    assert parse_json_text("{not json") is None
    assert parse_json_text("") is None
