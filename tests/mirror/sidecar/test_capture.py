"""Building CapturedCalls from raw exchanges: redaction, segments, truncation, credentials."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from judge.store.schema import TRANSLATION_LABEL
from mirror.config import CaptureSettings, RedactionRule
from mirror.events import RESERVED_SEGMENT_LABELS, Api, dump_event, parse_captured_call
from mirror.sidecar.capture import Capturer, api_for, new_exchange

KEY = "sk-test-0123456789abcdef"


def exchange(body: bytes, answer: bytes, headers: list[tuple[bytes, bytes]] | None = None):  # type: ignore[no-untyped-def]
    ex = new_exchange(
        Api.OPENAI_CHAT,
        "openai",
        headers
        or [
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"x-shadow-tenant", b"acme"),
            (b"X-Shadow-Route", b"checkout"),
            (b"anthropic-beta", b"tools-2024"),
            (b"x-request-user", b"u-42"),
        ],
        body,
    )
    ex.status = 200
    ex.response_headers = [(b"content-type", b"application/json")]
    ex.chunks = [answer]
    ex.chunk_times = [ex.started + 0.01]
    ex.captured_bytes = len(answer)
    ex.ended = ex.started + 0.02
    return ex


def chat_answer(text: str) -> bytes:
    return json.dumps(
        {
            "model": "gpt-x",
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
        }
    ).encode()


def test_redaction_segments_and_credentials() -> None:
    settings = CaptureSettings(
        redact=(RedactionRule(name="email", pattern=r"[\w.]+@[\w.]+\.\w+"),),
        segment_headers={"user": "x-request-user"},
        segment_body={"feature": "metadata.feature"},
    )
    body = json.dumps(
        {
            "model": "gpt-x",
            "metadata": {"feature": "support"},
            "messages": [{"role": "user", "content": f"mail bob@example.com, my key is {KEY}"}],
        }
    ).encode()
    call = Capturer(settings).build(exchange(body, chat_answer("wrote to bob@example.com")))
    raw = dump_event(call)
    assert KEY.encode() not in raw and b"bob@example.com" not in raw
    assert call.request is not None
    assert call.request["messages"][0]["content"] == (
        "mail [REDACTED:email], my key is [REDACTED:credential]"
    )
    assert call.primary.output is not None
    assert call.primary.output.text == "wrote to [REDACTED:email]"
    assert call.segment == {
        "tenant": "acme",
        "route": "checkout",
        "user": "u-42",
        "feature": "support",
    }
    assert call.request_headers == {"anthropic-beta": "tools-2024"}
    assert call.primary.model == "gpt-x" and call.primary.latency_ms == pytest.approx(20, abs=0.01)
    assert parse_captured_call(raw) == call


def test_truncated_and_invalid_bodies_are_flagged_not_lost() -> None:
    settings = CaptureSettings(max_body_bytes=1024)
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]})
    call = Capturer(settings).build(exchange(big.encode(), chat_answer("ok")))
    assert call.truncated.request and call.request is None
    assert call.request_text is not None and len(call.request_text) == 1024

    call = Capturer(settings).build(exchange(b"\xff\xfe{not json", chat_answer("ok")))
    assert not call.truncated.request and call.request is None
    assert call.request_text == "\ufffd\ufffd{not json"


def test_capture_paths() -> None:
    assert api_for("POST", "/v1/chat/completions") is Api.OPENAI_CHAT
    assert api_for("POST", "/v1/messages") is Api.ANTHROPIC_MESSAGES
    assert api_for("POST", "/v1/messages/count_tokens") is None
    assert api_for("GET", "/v1/models") is None


def test_the_judges_own_segment_label_is_not_taken_from_the_app() -> None:
    """`translation` is the segment the judge gives every pair (faithful or approximate): an
    app's `x-shadow-translation` is dropped, so that segment's figures stay the judge's."""
    headers = [(b"x-shadow-tenant", b"acme"), (b"x-shadow-translation", b"faithful")]
    call = Capturer(CaptureSettings()).build(
        exchange(b'{"model": "m"}', chat_answer("hi"), headers)
    )
    assert call.segment == {"tenant": "acme"}
    assert TRANSLATION_LABEL in RESERVED_SEGMENT_LABELS


@pytest.mark.parametrize("key", ["segment_headers", "segment_body"])
def test_a_reserved_segment_label_in_the_settings_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="translation: a segment label the judge gives"):
        CaptureSettings.model_validate({key: {"translation": "x-translation"}})
