"""Per-request control of the fake providers through ``x-fake-*`` request headers.

SDK callers pass these with ``extra_headers={...}``; every header is optional:

``x-fake-status: 429``
    Answer with that HTTP status and an error body in the provider's shape instead of
    a reply (any 4xx/5xx; 429 carries ``retry-after: 1`` unless overridden).
``x-fake-retry-after: 2.5``
    The ``retry-after`` value sent with the error (with any status, not only 429).
``x-fake-latency-ms: 250``
    Total time before a non-streaming answer (which waits for the larger of latency and
    ttft); for a stream, the time by which the last event is sent (the events after the
    first content are spread over it). Errors are answered at once.
``x-fake-ttft-ms: 80``
    Delay before the first content-bearing stream event (the OpenAI role chunk, the
    Responses ``response.created``/``in_progress`` events and Anthropic's
    ``message_start``/``content_block_start``/``ping`` come first, as real providers do).
``x-fake-tool: get_weather`` (or ``1``)
    Force a tool call: to the tool of that name, else to the first tool of the request
    (a name the request does not offer is still called, with ``{}``; ``1`` without
    tools calls nothing).
``x-fake-size: 5000000``
    Make the default answer text exactly that many UTF-8 bytes (max_tokens is ignored).
``x-fake-stream-error: 1 | cut | clean | event``
    Break a stream half way through its content. ``1``: the provider's usual failure,
    ``cut`` for OpenAI, ``event`` for Anthropic. ``cut``: the connection drops with no
    terminating chunk and no ``[DONE]`` (openai raises ``APIConnectionError``; anthropic
    lets ``httpx2.RemoteProtocolError`` through).
    ``clean``: the body ends normally but early (no ``[DONE]``, no ``message_stop``,
    no ``response.completed``). ``event``: the provider's in-band error (OpenAI chat
    ``data: {"error": ...}``; Responses ``event: error`` then ``response.failed``;
    Anthropic ``event: error`` with ``overloaded_error``, all with HTTP status 200).
``x-fake-split-utf8: 1``
    Put multi-byte characters in the default text ("héllo — 日本語 🎉") and send every
    body chunk that holds one (stream events, uncompressed JSON) in two ASGI ``send``
    calls split inside a character, 2 ms apart so they leave as separate TCP segments.

Headers shape the *default* reply; a scripted responder's reply is sent as given (status,
latency and stream-error headers still apply).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

STREAM_ERROR_MODES = frozenset({"default", "cut", "clean", "event"})


class ControlError(ValueError):
    """An ``x-fake-*`` header has a value the fake cannot use (answered with a 400)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Delays of one exchange, in milliseconds (app defaults, overridden per request)."""

    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    chunk_delay_ms: float = 0.0

    @property
    def idle(self) -> bool:
        return self.latency_ms <= 0 and self.ttft_ms <= 0 and self.chunk_delay_ms <= 0


@dataclass(frozen=True, slots=True)
class Control:
    """The parsed ``x-fake-*`` headers of one request."""

    timing: Timing = Timing()
    status: int | None = None
    retry_after: str | None = None
    tool: str | None = None
    size: int | None = None
    stream_error: str | None = None
    split_utf8: bool = False


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ControlError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or value != value:  # NaN is not equal to itself
        raise ControlError(f"{name} must be a non-negative number, got {raw!r}")
    return value


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ControlError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ControlError(f"{name} must be between {low} and {high}, got {value}")
    return value


def parse_control(headers: Iterable[tuple[bytes, bytes]], defaults: Timing) -> Control:
    """Read the ``x-fake-*`` headers (names as ASGI gives them, lower-case)."""
    fake = {
        name.decode("latin-1").lower(): value.decode("latin-1").strip()
        for name, value in headers
        if name[:7].lower() == b"x-fake-"
    }
    if not fake:
        return Control(timing=defaults)
    latency = fake.get("x-fake-latency-ms")
    ttft = fake.get("x-fake-ttft-ms")
    timing = Timing(
        latency_ms=_number("x-fake-latency-ms", latency) if latency else defaults.latency_ms,
        ttft_ms=_number("x-fake-ttft-ms", ttft) if ttft else defaults.ttft_ms,
        chunk_delay_ms=defaults.chunk_delay_ms,
    )
    status = fake.get("x-fake-status")
    size = fake.get("x-fake-size")
    stream_error = fake.get("x-fake-stream-error", "").lower() or None
    if stream_error in ("1", "true", "yes"):
        stream_error = "default"  # each provider's usual failure: OpenAI cut, Anthropic event
    if stream_error is not None and stream_error not in STREAM_ERROR_MODES:
        raise ControlError(f"x-fake-stream-error must be 1, cut, clean or event: {stream_error!r}")
    return Control(
        timing=timing,
        status=None if status is None else _integer("x-fake-status", status, 400, 599),
        retry_after=fake.get("x-fake-retry-after") or None,
        tool=fake.get("x-fake-tool") or None,
        size=None if size is None else _integer("x-fake-size", size, 0, 1 << 30),
        stream_error=stream_error,
        split_utf8=fake.get("x-fake-split-utf8", "").lower() in ("1", "true", "yes"),
    )
