"""From a raw exchange (what the live path saw) to a redacted `CapturedCall`.

The live path does the least it can: it keeps references to the request bytes, the response
chunks it forwarded (up to the cap) and a clock reading per chunk, in an `Exchange`. Everything
else — JSON parsing, stream reassembly, segment labels, redaction — happens here, in the
publisher's background task. Credentials are read from the request headers only to redact
them from bodies; no header is copied into the event except the configured replay headers,
which may never be credential headers (the settings refuse them).

A call a candidate served (staged rollout) is captured with the candidate's answer as the
candidate sent it, before translation, in `served_by`; its `primary` says the primary was not
asked (see `mirror.events.CapturedCall`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mirror.answers.normalize import Answer, normalize_answer
from mirror.config import CREDENTIAL_HEADERS, CaptureSettings
from mirror.events import (
    RESERVED_SEGMENT_LABELS,
    SEGMENT_HEADER_PREFIX,
    Api,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    Output,
    ServedBy,
    Truncation,
)
from mirror.sidecar.redact import CallRedactor, Redactor

#: Segment label values are labels, not payloads.
MAX_LABEL_LENGTH = 200

_PATHS = {
    "/v1/chat/completions": Api.OPENAI_CHAT,
    "/v1/responses": Api.OPENAI_RESPONSES,
    "/v1/embeddings": Api.OPENAI_EMBEDDINGS,
    "/v1/messages": Api.ANTHROPIC_MESSAGES,
}


def api_for(method: str, path: str) -> Api | None:
    """The API a request is a call of, or None when it is not one we capture."""
    if method != "POST":
        return None
    return _PATHS.get(path.rstrip("/"))


@dataclass(frozen=True, slots=True)
class Served:
    """The candidate arm that answered a served call, and the API it answered in."""

    migration: str
    arm: str
    provider: str
    model: str
    api: Api


@dataclass(slots=True)
class Exchange:
    """One proxied call as raw as the live path saw it. Built on the request path: keep cheap."""

    api: Api
    provider: str
    request_headers: Sequence[tuple[bytes, bytes]]
    request_body: bytes
    started: float  # perf_counter() just before the request went upstream
    wall_started: float  # time.time() at the same moment
    status: int | None = None
    response_headers: Sequence[tuple[bytes, bytes]] = ()
    chunks: list[bytes] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)
    captured_bytes: int = 0
    response_truncated: bool = False
    ended: float = 0.0
    error: ErrorInfo | None = None
    #: Set when a candidate answered (the response fields are then the candidate's, as it
    #: sent them); `provider` stays the primary's.
    served: Served | None = None

    @property
    def size(self) -> int:
        """Bytes this exchange holds on to while queued."""
        return len(self.request_body) + self.captured_bytes

    def record(self, chunk: bytes, arrived: float, cap: int) -> None:
        """Keep a response chunk the app was given, up to `cap` bytes in all."""
        if self.response_truncated:
            return
        room = cap - self.captured_bytes
        if len(chunk) > room:
            chunk = chunk[:room]
            self.response_truncated = True
        self.chunks.append(chunk)
        self.chunk_times.append(arrived)
        self.captured_bytes += len(chunk)


def new_exchange(
    api: Api, provider: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> Exchange:
    return Exchange(api, provider, headers, body, time.perf_counter(), time.time())


class Capturer:
    """Builds `CapturedCall`s by the capture settings."""

    def __init__(self, settings: CaptureSettings) -> None:
        self._settings = settings
        self._redactor = Redactor(settings.redact, settings.secret_envs)
        self._label_headers = {header: label for label, header in settings.segment_headers.items()}

    def build(self, exchange: Exchange) -> CapturedCall:
        headers = lower_headers(exchange.request_headers)
        redactor = self._redactor.for_call(_credentials(headers))
        cap = self._settings.max_body_bytes
        body = exchange.request_body
        request_truncated = len(body) > cap
        request: dict[str, Any] | None = None
        request_text: str | None = None
        if not request_truncated:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                request = redactor.value(parsed)
        if request is None:
            request_text = redactor.text(body[:cap].decode("utf-8", "replace"))
        model = request.get("model") if request else None
        model = model if isinstance(model, str) else None
        served = exchange.served
        answer = normalize_answer(
            Answer(
                api=exchange.api if served is None else served.api,
                provider=exchange.provider if served is None else served.provider,
                status_code=exchange.status,
                headers=exchange.response_headers,
                chunks=exchange.chunks,
                chunk_times=exchange.chunk_times,
                started=exchange.started,
                ended=exchange.ended,
                truncated=exchange.response_truncated,
                error=exchange.error,
                request_model=model if served is None else served.model,
            )
        )
        served_by: ServedBy | None = None
        if served is None:
            primary = _redact_result(answer, redactor)
        else:
            primary = not_asked(exchange.provider, model, served)
            served_by = ServedBy(
                migration=served.migration,
                arm=served.arm,
                provider=served.provider,
                model=answer.model or served.model,
                answer=_redact_result(answer, redactor),
            )
        ended_wall = exchange.wall_started + (exchange.ended - exchange.started)
        return CapturedCall(
            captured_at=datetime.fromtimestamp(ended_wall, UTC),
            api=exchange.api,
            segment=self._segment(headers, request, redactor),
            request=request,
            request_text=request_text,
            request_headers={
                name: headers[name] for name in self._settings.replay_headers if name in headers
            },
            primary=primary,
            truncated=Truncation(request=request_truncated, response=exchange.response_truncated),
            served_by=served_by,
        )

    def _segment(
        self, headers: Mapping[str, str], request: dict[str, Any] | None, redactor: CallRedactor
    ) -> dict[str, str]:
        labels = segment_labels(headers, request, self._label_headers, self._settings.segment_body)
        return {k: redactor.text(v)[:MAX_LABEL_LENGTH] for k, v in labels.items()}


def not_asked(provider: str, model: str | None, served: Served) -> ArmResult:
    """The primary's side of a served call: not asked, and why."""
    message = f"not asked: arm {served.arm!r} of migration {served.migration!r} served the call"
    return ArmResult(
        provider=provider,
        model=model,
        latency_ms=0.0,
        error=ErrorInfo(kind=ErrorKind.SKIPPED, message=message),
    )


def segment_labels(
    headers: Mapping[str, str],
    request: Mapping[str, Any] | None,
    label_headers: Mapping[str, str],
    segment_body: Mapping[str, str],
) -> dict[str, str]:
    """A call's segment labels, before redaction: `x-shadow-<label>` headers, the configured
    label headers (`header -> label`, lower-case names) and body paths (`label -> path`).
    Shared by the capture and the sidecar's rollout decision, so both see the same labels."""
    labels: dict[str, str] = {}
    for name, value in headers.items():
        if name.startswith(SEGMENT_HEADER_PREFIX):
            labels[name[len(SEGMENT_HEADER_PREFIX) :]] = value
        elif name in label_headers:
            labels[label_headers[name]] = value
    if request is not None:
        for label, path in segment_body.items():
            found = scalar_at(request, path)
            if found is not None:
                labels[label] = found
    labels.pop("", None)
    for reserved in RESERVED_SEGMENT_LABELS & labels.keys():
        del labels[reserved]  # the judge's own label (`x-shadow-translation` from an app)
    return labels


def scalar_at(value: Any, path: str) -> str | None:
    """The string or number at a dotted `path` in a JSON value, as text; None otherwise."""
    found = _dig_path(value, path)
    if isinstance(found, str | int | float) and not isinstance(found, bool):
        return str(found)
    return None


def lower_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _credentials(headers: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            scheme, _, token = value.partition(" ")
            found.append(
                token.strip() if token and scheme.lower() in ("bearer", "basic") else value
            )
    return found


def _dig_path(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _redact_result(result: ArmResult, redactor: CallRedactor) -> ArmResult:
    if not redactor.active or result.output is None:
        return result
    output: Output = result.output
    redacted = output.model_copy(
        update={
            "text": redactor.text(output.text),
            "tool_calls": tuple(
                call.model_copy(update={"arguments": redactor.text(call.arguments)})
                for call in output.tool_calls
            ),
            "parsed_json": redactor.value(output.parsed_json),
            "refusal": None if output.refusal is None else redactor.text(output.refusal),
        }
    )
    return result.model_copy(update={"output": redacted})
