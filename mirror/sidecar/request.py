"""A request from the app as the sidecar reads it (`Request`), what one app connection may make
the sidecar hold or wait for (`Limits`), and the answer to a request it will not forward
(`Refusal`); `check_head` applies the rules below to a head just read. `mirror.sidecar.wire`
reads the requests and enforces the rest.

The rules a request meets here (RFC 9110/9112), each answered by the sidecar itself (in the
provider's error shape, by `Handler.refuse`) and followed by a close, never forwarded:

- the request line and headers together at most `Limits.max_head_bytes` (64 KiB): past it 414
  while the target is still being read, else 431; more than `max_header_fields` (100): 431;
- the head complete within `head_timeout_s` of its first byte, and no pause longer than
  `body_idle_timeout_s` while a body arrives: else 408. Between requests only the keep-alive
  timer runs (`keep_alive_s`), and its end closes the connection silently;
- a body at most `max_body_bytes` (32 MiB): a Content-Length above it is refused as soon as the
  head is read, a chunked body as soon as its bytes pass it: 413;
- `Transfer-Encoding` other than exactly `chunked`: 501; chunked and Content-Length together,
  or any framing llhttp refuses: 400;
- HTTP/1.1 without exactly one `Host` (or HTTP/1.0 with two): 400; a header value with a
  control character (RFC 9110 5.5), or a request line without a version: 400; a version
  other than HTTP/1.0 and 1.1: 505;
- a target that is not origin-form (absolute-form `http://host/...`, `*`, CONNECT): 400, as
  this is a reverse proxy, not a forward one;
- trailer fields of a chunked body are dropped, never merged into the headers;
- after a bad request in a pipeline, the requests before it are answered first, in order;
  after a refusal the write side is shut and what the app still sends is read and dropped for
  up to 2 s before the close, so a reset does not destroy the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Idle app connections are closed after this long. Longer than the idle expiry of the apps'
#: connection pools (httpx: 5 s), so the app, not the sidecar, closes an idle connection: the
#: other way round races, and the app sees an error it would not see from the provider.
APP_KEEP_ALIVE_S = 75.0

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
    502: b"Bad Gateway",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one app connection may make the sidecar hold or wait for (see the module doc)."""

    max_head_bytes: int = 64 * 1024
    max_header_fields: int = 100
    max_body_bytes: int = 32 << 20
    head_timeout_s: float = 30.0
    body_idle_timeout_s: float = 30.0
    keep_alive_s: float = APP_KEEP_ALIVE_S


class Refusal(Exception):
    """A request the sidecar answers itself with `status`, then closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_NO_TOKENS: frozenset[bytes] = frozenset()


@dataclass(slots=True)
class Request:
    """One request as the app sent it, header names in their original case."""

    method: bytes = b""
    target: bytes = b""
    version: str = "1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    keep_alive: bool = True
    #: Header names (lower case) the `Connection` header lists: hop-by-hop, never forwarded.
    connection_tokens: frozenset[bytes] = _NO_TOKENS
    #: Set on a request that is answered with this refusal (a pipeline's bad request).
    refusal: Refusal | None = None


#: Bytes of a request line besides its target ("POST " ... " HTTP/1.1\r\n") and of the head's end.
_LINE_OVERHEAD = 32


def check_head(request: Request, limits: Limits, head_seen: int) -> bool:
    """Check a head just read (`head_seen`: the bytes of its target and fields) against the
    rules of the module doc: a `Refusal` when it breaks one. Sets the request's
    `connection_tokens` (and `keep_alive` when they hold `close`); True when it asks for
    `100-continue`."""
    method = request.method
    version = request.version
    if version not in ("1.1", "1.0"):
        if version == "0.9":  # llhttp's reading of a request line without a version
            raise Refusal(400, "the request line has no HTTP version")
        raise Refusal(505, f"HTTP/{version} is not served here: HTTP/1.1 is")
    if head_seen + _LINE_OVERHEAD > limits.max_head_bytes:
        raise Refusal(431, f"the request head passes {limits.max_head_bytes} bytes")
    if method == b"CONNECT":
        raise Refusal(400, "CONNECT is not served: this is a reverse proxy")
    if not request.target.startswith(b"/"):
        raise Refusal(400, "only origin-form targets (/path) are served: not a forward proxy")
    hosts = 0
    coding: bytes | None = None
    length: bytes | None = None
    expect = False
    tokens: set[bytes] | None = None
    for name, value in request.headers:
        lower = name.lower()
        if lower == b"host":
            hosts += 1
        elif lower == b"transfer-encoding":
            coding = value if coding is None else coding + b"," + value
        elif lower == b"content-length":
            length = value
        elif lower == b"connection":
            tokens = tokens or set()
            tokens.update(t.strip().lower() for t in value.split(b","))
        elif lower == b"expect":
            expect = value.lower() == b"100-continue"
    if hosts > 1 or (hosts == 0 and request.version == "1.1"):
        raise Refusal(400, f"a request needs exactly one Host header, not {hosts}")
    if coding is not None and coding.strip().lower() != b"chunked":
        raise Refusal(501, "Transfer-Encoding other than chunked is not implemented")
    if length is not None and int(length) > limits.max_body_bytes:
        raise Refusal(413, f"the request body passes {limits.max_body_bytes} bytes")
    if tokens:
        tokens.discard(b"")
        request.connection_tokens = frozenset(tokens)
        if b"close" in tokens:  # close wins over keep-alive (RFC 9112 9.3); llhttp's 1.0 not
            request.keep_alive = False
    return expect
