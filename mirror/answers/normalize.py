"""Provider answers, streamed or not, normalised into an `ArmResult`.

One code path for every arm: the sidecar's capture of the primary, the in-process transport and
the runner's candidate calls all hand the raw answer (status, headers, body chunks with arrival
times) to `normalize_answer`. Time to first token is the arrival of the first stream event that
carries content (a role-only chunk or `message_start` is not a token).

Tolerant by design: an answer we cannot read still yields an `ArmResult` (with the status, the
latency and an error saying what was wrong), because a broken primary answer is itself data.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson

from mirror.answers.bodies import http_error, normalize_body
from mirror.answers.streams import reassemble_stream
from mirror.events import Api, ArmResult, ErrorInfo, ErrorKind


@dataclass(frozen=True, slots=True)
class Answer:
    """What one provider call returned, as raw as it came."""

    api: Api
    provider: str
    status_code: int | None
    headers: Sequence[tuple[bytes, bytes]]
    chunks: Sequence[bytes]
    chunk_times: Sequence[float]
    started: float
    ended: float
    truncated: bool = False
    error: ErrorInfo | None = None
    request_model: str | None = None


def normalize_answer(answer: Answer) -> ArmResult:
    """Turn a raw answer into an `ArmResult`; never raises on a malformed body."""
    latency_ms = (answer.ended - answer.started) * 1000.0
    base: dict[str, Any] = {
        "provider": answer.provider,
        "model": answer.request_model,
        "status_code": answer.status_code,
        "latency_ms": round(latency_ms, 3),
        "truncated": answer.truncated,
        "error": answer.error,
    }
    content_type, encoding = _content_headers(answer.headers)
    stream = content_type.startswith("text/event-stream")
    base["stream"] = stream
    if answer.status_code is None:
        return ArmResult(**base)
    if stream:
        result = reassemble_stream(answer.api, answer.chunks, answer.chunk_times)
        ttft = result.first_token_at
        merged = {k: v for k, v in result.fields.items() if v is not None}
        if answer.error is None and result.error is not None:
            merged["error"] = result.error
        return ArmResult(
            **{**base, **merged},
            ttft_ms=None if ttft is None else round((ttft - answer.started) * 1000.0, 3),
        )
    body = _decode_body(encoding, answer.headers, answer.chunks)
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    if answer.status_code >= 300:
        if answer.error is None:
            base["error"] = http_error(answer.status_code, payload, body)
        return ArmResult(**base)
    if not isinstance(payload, dict):
        if answer.error is None and not answer.truncated:
            base["error"] = ErrorInfo(kind=ErrorKind.HTTP, message="answer is not a JSON object")
        return ArmResult(**base)
    fields = normalize_body(answer.api, payload)
    return ArmResult(**{**base, **{k: v for k, v in fields.items() if v is not None}})


def _content_headers(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, str]:
    content_type = encoding = ""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-type":
            content_type = value.decode("latin-1").lower()
        elif lowered == b"content-encoding":
            encoding = value.decode("latin-1").lower().strip()
    return content_type, encoding


def _decode_body(
    encoding: str, headers: Sequence[tuple[bytes, bytes]], chunks: Sequence[bytes]
) -> bytes:
    raw = b"".join(chunks)
    if not encoding or encoding == "identity":
        return raw
    try:
        if encoding == "gzip":  # what providers send; the stdlib is the fast path
            return gzip.decompress(raw)
        # Other codings (br, zstd, deflate, chains) through httpx2's decoders.
        return httpx2.Response(200, headers=list(headers), content=raw).content
    except (OSError, EOFError, zlib.error, httpx2.DecodingError):
        return b""  # truncated or corrupt: what fitted is not decodable
