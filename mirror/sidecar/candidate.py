"""A served call's two ends on the wire: the request the candidate arm gets, and the head and
frames of its answer as the app gets them (`mirror.sidecar.served_call` runs the call).

The request is the app's as the runner would replay it to that arm: `translate_served_request`
(the same API: a copy with the arm's model), then the arm's system prompt and parameters; sent
with `accept-encoding: identity`, since its answer is read before the app gets it.

Credentials. An arm on another provider than the one the call was routed to gets that
provider's own key (`api_key_env`), never the app's key for another provider, and only the
headers that name the API version and betas (the same API) besides. An arm on the same
provider gets the app's own headers, credentials included, as the primary would have: it is
the app's traffic on the app's account; that provider's key is used only when the app sent
none. A key variable named in the settings but unset is `Fallback("no_key")`.

The answer. The same API passes status and headers through, re-framed as chunked
(`content-encoding` and length dropped: the body arrives decoded); the other API gets the
head its own provider would send (`application/json` with a length for a whole body,
`text/event-stream` chunked for a stream). Both carry `x-shadowjudge-served-by:
<migration>/<arm>`, so the app's logs can tell a served answer apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from mirror.config import CREDENTIAL_HEADERS
from mirror.errors import Untranslatable
from mirror.events import SEGMENT_HEADER_PREFIX, SHADOW_TRAFFIC_HEADER, Api, ProviderKind
from mirror.sidecar.rollout import Choice
from mirror.translate.request import arm_variant
from mirror.translate.response import translate_served_request

API_PATHS: Mapping[Api, str] = {
    Api.OPENAI_CHAT: "/v1/chat/completions",
    Api.ANTHROPIC_MESSAGES: "/v1/messages",
}
#: The Anthropic API version a translated request is written for (`mirror.translate.request`).
ANTHROPIC_VERSION = "2026-10-21"
SERVED_BY_HEADER = b"x-shadowjudge-served-by"
USER_AGENT = "shadowjudge-sidecar"
#: Response headers that describe the candidate's connection or wire bytes, not the answer.
_RESPONSE_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"content-encoding",
    }
)
#: App request headers never sent on, even to the same provider.
_REQUEST_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
        "accept-encoding",
        SHADOW_TRAFFIC_HEADER,
    }
)
_APP_CREDENTIALS = frozenset({"authorization", "x-api-key", "api-key"})
#: The same API on another provider: the app's headers that say which API version it speaks.
_API_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")
#: How each API opens a stream with an error instead of an answer.
_STREAM_ERRORS = (b"event: error", b'data: {"error"', b'data:{"error"')


class Fallback(Exception):
    """The candidate cannot serve this call; nothing reached the app, so the primary serves it.
    `reason` is the label of `shadowjudge_rollout_fallbacks_total`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def request_body(choice: Choice, api: Api, target: Api) -> dict[str, Any]:
    """The candidate's request body in `target`'s API; `Fallback("untranslatable")`."""
    arm = choice.arm
    try:
        body = translate_served_request(
            choice.body,
            source=api,
            target=target,
            model=arm.model,
            default_max_tokens=arm.default_max_tokens,
            sampling=arm.sampling,
        )
        return arm_variant(body, target, arm)
    except Untranslatable as exc:
        raise Fallback("untranslatable", exc.reason) from exc


def request_headers(choice: Choice, api: Api, target: Api, primary: str) -> dict[str, str]:
    """The candidate's request headers (see the module docs); `Fallback("no_key")`.
    `primary` is the name of the provider the call was routed to."""
    app_headers, provider = choice.headers, choice.provider
    same_provider = choice.provider_name == primary
    headers: dict[str, str] = {}
    if same_provider:
        for name, value in app_headers.items():
            if name not in _REQUEST_DROPPED and not name.startswith(SEGMENT_HEADER_PREFIX):
                headers[name] = value
    elif target is api:
        headers.update({h: app_headers[h] for h in _API_HEADERS if h in app_headers})
    headers.setdefault("user-agent", USER_AGENT)
    headers["content-type"] = "application/json"
    headers["accept-encoding"] = "identity"
    if not (same_provider and _APP_CREDENTIALS & headers.keys()):
        for name in CREDENTIAL_HEADERS:
            headers.pop(name, None)
        key = provider.api_key()
        if provider.api_key_env and not key:
            raise Fallback("no_key", f"{provider.api_key_env} unset for {choice.provider_name}")
        if key and provider.kind is ProviderKind.ANTHROPIC:
            headers["x-api-key"] = key
        elif key:
            headers["authorization"] = f"Bearer {key}"
    if target is Api.ANTHROPIC_MESSAGES:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    return headers


def answer_head(
    status: int,
    *,
    passed: Iterable[tuple[bytes, bytes]] | None,
    length: int | None,
    keep_alive: bool,
    served_by: str,
) -> bytes:
    """The head of a served answer: `passed` are the candidate's own headers (the same API),
    None for a translated answer; `length` for a whole body (None: chunked)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))]
    if passed is not None:
        lines.extend(
            b"%s: %s\r\n" % (name, value)
            for name, value in passed
            if name.lower() not in _RESPONSE_DROPPED
        )
    elif length is not None:
        lines.append(b"content-type: application/json\r\n")
    else:
        lines.append(
            b"content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
        )
    if length is None:
        lines.append(b"transfer-encoding: chunked\r\n")
    else:
        lines.append(b"content-length: %d\r\n" % length)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"%s: %s\r\n\r\n" % (SERVED_BY_HEADER, served_by.encode()))
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; nothing for no data (an empty chunk ends the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK = b"0\r\n\r\n"


def opens_with_error(source: Iterable[bytes]) -> bool:
    """An error event among a stream's first events. At a line start only: inside JSON a
    newline is escaped, so an answer's own text cannot look like one."""
    head = b"\n" + b"".join(source)[:8192]
    return any(b"\n" + marker in head for marker in _STREAM_ERRORS)


def events_in(data: bytes) -> int:
    """Complete SSE events in `data` (each ends with a blank line)."""
    return data.count(b"\n\n") + data.count(b"\r\n\r\n")


def include_usage(body: Mapping[str, Any]) -> bool:
    """Whether a Chat Completions request asked for the usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def decoded_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The candidate's headers as capture reads them: its body is recorded decoded."""
    wire = (b"content-encoding", b"content-length", b"transfer-encoding")
    return [(name, value) for name, value in raw if name.lower() not in wire]


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"
