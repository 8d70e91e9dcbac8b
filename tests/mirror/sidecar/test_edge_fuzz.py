"""Property-based fuzz of the sidecar's request side, with h11 as the reference parser.

Request byte streams (valid requests, mutated heads, chunk framing with extensions and
trailers, pipelining, random split points) go to a running sidecar and, whole, to h11. They
must agree on which requests are accepted, and what reaches the upstream (method, target,
version, headers minus hop-by-hop, body) must be what h11 parsed.

Where the sidecar is stricter than h11 on purpose, the test applies the same rule to h11's
result (`_our_rules`, `reference`): methods llhttp knows; HTTP/1.0 and 1.1 only; origin-form
targets only; dot-segments removed (a path that climbs above its root refused); exactly one
Host for HTTP/1.1; at most 100 header fields; Transfer-Encoding exactly `chunked`; no control
characters in a value (RFC 9110 5.5); no line of a head or a trailer section ended by a bare
LF (RFC 9112 2.2 lets a recipient accept one; llhttp, as the sidecar runs it, refuses it: a
known smuggling vector); no folded header line (obs-fold: RFC 9112 5.2 lets a server refuse
it with 400, which llhttp does; h11 unfolds it); headers named by `Connection` dropped. And
two where the sidecar does more: HTTP/1.0 keep-alive, which h11 does not do, and CR or LF
bytes before a request line, which llhttp skips (RFC 9112 2.2) and h11 refuses: each request
after the first is read by a fresh h11 connection, without those bytes. And one leniency the
RFC allows: a run of spaces between the request line's parts (`DELETE /x  HTTP/1.1`), which
RFC 9112 3 lets a recipient parse on word boundaries (llhttp does, h11 refuses); the sidecar
forwards the line with single spaces, so the provider never sees the ambiguity, and the
reference reads the line with the run collapsed.

2,000 examples by default (about 15 s here); for a long local run:

    SHADOWJUDGE_FUZZ_EXAMPLES=100000 .venv/bin/pytest tests/mirror/sidecar/test_edge_fuzz.py \
        -p no:cacheprovider --timeout 0
"""

from __future__ import annotations

import logging
import os
import re
import socket
import string
from collections.abc import Iterator
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.config import ProviderSettings, SidecarSettings
from mirror.events import SEGMENT_HEADER_PREFIX, SHADOW_TRAFFIC_HEADER, ProviderKind
from mirror.sidecar.target import remove_dot_segments
from tests.mirror.sidecar.test_wire import CHAT, Received, Upstream, connect, ok, serve_upstream
from tests.sidecar import RunningSidecar, run_sidecar

EXAMPLES = int(os.environ.get("SHADOWJUDGE_FUZZ_EXAMPLES", "2000"))
OK = ok(CHAT)
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
BARE_LF = re.compile(rb"(?<!\r)\n")
OBS_FOLD = re.compile(rb"\n[ \t]")
#: A request line whose parts are separated by runs of spaces (RFC 9112 3: a recipient MAY).
SPACED_LINE = re.compile(rb"([^ \r\n]+) +([^ \r\n]+) +(HTTP/[^\r\n]*\r\n)")
#: The methods llhttp parses (any other token is a 400 there; h11 takes any token).
LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)
#: Besides hop-by-hop: what the sidecar sets itself (Host, Content-Length) or answers (Expect).
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
#: The sidecar's own headers (segment labels, the runner's marker): read, never forwarded.
OURS = (SEGMENT_HEADER_PREFIX.encode(), SHADOW_TRAFFIC_HEADER.encode())


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[Upstream, RunningSidecar]]:
    with serve_upstream() as upstream:
        providers = {"openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=upstream.url)}
        with run_sidecar(providers, sidecar=SidecarSettings(upstream_keepalive_s=2)) as sidecar:
            yield upstream, sidecar


# --- the byte streams ---------------------------------------------------------------------

_TOKEN = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=10) | (
    st.sampled_from(
        ["X-Shadow-Route", "Expect", "TE", "Trailer", "Keep-Alive", "Proxy-Connection"]
        + ["Authorization", "Content-Type"]
    )
)
_VALUE = st.text(string.ascii_letters + string.digits + " \t-_.,;=/:\"'()", max_size=16)
_SEGMENT = st.sampled_from(["v1", "chat", "x", "a.b", ".", "..", "%2e", "%2E%2e", ".%2e", ""])


@st.composite
def a_request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = "/v1/" + "/".join(draw(st.lists(_SEGMENT, max_size=5)))
    query = draw(st.sampled_from(["", "?", "?a=1", "?p=../x&q"]))
    form = draw(st.sampled_from(["origin"] * 8 + ["absolute", "asterisk"]))
    target = {"origin": path + query, "absolute": "http://evil.example" + path, "asterisk": "*"}
    version = draw(st.sampled_from(["1.1"] * 5 + ["1.0"]))
    headers = [f"{n}: {v}" for n, v in draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=5))]
    headers += ["Host: sidecar"] * draw(st.sampled_from([1, 1, 1, 1, 1, 0, 2]))
    if draw(st.integers(0, 9)) == 0:
        headers += [f"X-Many-{i}: m" for i in range(draw(st.integers(95, 105)))]
    if draw(st.booleans()):
        named = draw(st.lists(_TOKEN, max_size=2))
        headers.append(
            "Connection: "
            + ", ".join([*named, draw(st.sampled_from(["close", "keep-alive", "x"]))])
        )
        headers += [f"{n}: hop" for n in named]
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "length", "chunked", "none"]))
    if framing == "none":
        body = b""
    if framing == "length":
        headers.append(f"Content-Length: {len(body)}")
    encoded = body
    if framing == "chunked":
        coding = draw(st.sampled_from(["chunked"] * 6 + ["gzip, chunked", "Chunked", "identity"]))
        headers.append(f"Transfer-Encoding: {coding}")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        ext = draw(st.sampled_from(["", ";ext=1", ";e"]))
        encoded = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext.encode(), p) for p in pieces if p)
        trailers = draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=2))
        encoded += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n"
    headers = draw(st.permutations(headers))
    head = f"{method} {target[form]} HTTP/{version}\r\n" + "".join(h + "\r\n" for h in headers)
    blank = draw(st.sampled_from([b""] * 6 + [b"\r\n"]))  # an empty line first: skipped
    data = blank + head.encode() + b"\r\n" + encoded
    mutation = draw(st.sampled_from(["none"] * 4 + ["replace", "insert", "delete"]))
    if mutation != "none":
        at = draw(st.integers(0, len(head)))
        byte = bytes([draw(st.integers(0, 255))])
        cut = data[at + 1 :] if mutation != "insert" else data[at:]
        data = data[:at] + (b"" if mutation == "delete" else byte) + cut
    return data


@dataclass
class Expected:
    forwarded: list[tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]], bytes]]
    refused: bool  # the stream ends in a refusal (an error answer, then the close)
    complete: bool  # nothing was left half-read


# --- the reference ------------------------------------------------------------------------


def _our_rules(request: h11.Request) -> bytes | None:
    """The target the sidecar forwards for `request` as h11 parsed it, or None where the
    sidecar is deliberately stricter than h11 and refuses it."""
    if request.method not in LLHTTP_METHODS:
        return None  # llhttp knows the registered methods only; h11 takes any token
    if request.http_version not in (b"1.0", b"1.1"):
        return None  # HTTP/1.0 and 1.1 only (505, or 400); h11 takes any HTTP/d.d
    raw = list(request.headers.raw_items())
    if len(raw) > 100:
        return None  # 100 header fields at most
    if any(CONTROL.search(value) for _, value in raw):
        return None  # RFC 9110 5.5: a control character in a value; h11 lets them by
    hosts = sum(1 for name, _ in raw if name.lower() == b"host")
    if hosts > 1 or (hosts == 0 and request.http_version == b"1.1"):
        return None  # exactly one Host (h11 takes none from HTTP/1.0, as we do)
    if not request.target.startswith(b"/"):
        return None  # origin-form only: not a forward proxy
    codings = [v for n, v in raw if n.lower() == b"transfer-encoding"]
    if codings and b",".join(codings).strip().lower() != b"chunked":
        return None
    path, mark, query = request.target.partition(b"?")
    normalised = remove_dot_segments(path)
    if normalised is None:
        return None
    return normalised + mark + query


def _fresh(data: bytes) -> tuple[h11.Connection, bytes]:
    """An h11 server connection fed `data` without the CR and LF bytes before its request
    line: llhttp skips them (RFC 9112 2.2 asks a server to ignore empty lines there), h11
    refuses them. A run of spaces between the request line's parts is collapsed: llhttp takes
    it (RFC 9112 3 allows that), h11 does not."""
    data = data.lstrip(b"\r\n")
    line = SPACED_LINE.match(data)
    if line is not None:
        data = b" ".join(line.groups()) + data[line.end() :]
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data)
    return connection, data


def reference(data: bytes) -> Expected:
    connection, data = _fresh(data)
    forwarded: Expected = Expected([], refused=False, complete=True)
    request: h11.Request | None = None
    body = b""
    left = len(data)
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError:
            forwarded.refused = True
            return forwarded
        read = data[len(data) - left : len(data) - len(connection.trailing_data[0])]
        left = len(connection.trailing_data[0])
        if isinstance(event, h11.Request | h11.EndOfMessage) and BARE_LF.search(read):
            forwarded.refused = True  # a head or trailer line ending in a bare LF: see above
            return forwarded
        if isinstance(event, h11.Request) and OBS_FOLD.search(read):
            forwarded.refused = True  # a folded header line: h11 unfolds, llhttp refuses
            return forwarded
        if event is h11.NEED_DATA:
            forwarded.complete = request is None and not connection.trailing_data[0]
            return forwarded
        if isinstance(event, h11.Request):
            request, body = event, b""
            if _our_rules(event) is None:
                forwarded.refused = True  # refused once the head is read, body or not
                return forwarded
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            target = _our_rules(request)
            assert target is not None
            named = {
                t.strip().lower()
                for n, v in request.headers.raw_items()
                if n.lower() == b"connection"
                for t in v.split(b",")
            }
            headers = [
                (n, v)
                for n, v in request.headers.raw_items()
                if n.lower() not in NOT_FORWARDED
                and n.lower() not in named
                and not n.lower().startswith(OURS)
            ]
            forwarded.forwarded.append(
                (request.method, target, request.http_version, headers, body)
            )
            if b"close" in named:
                return forwarded  # nothing after it is read
            if request.http_version == b"1.0" and b"keep-alive" not in named:
                return forwarded  # HTTP/1.0 without keep-alive: the same
            # The next request, on a fresh h11 connection: h11 does no HTTP/1.0 keep-alive,
            # which the sidecar does, and refuses the empty lines llhttp skips (see `_fresh`).
            request = None
            connection, data = _fresh(connection.trailing_data[0])
            left = len(data)
        else:
            return forwarded  # ConnectionClosed and the like: not produced here


def received(got: Received) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    method, target, version = got.request_line.split(b" ")
    headers = []
    for line in got.header_lines():
        name, _, value = line.partition(b":")
        if name.lower() not in (b"host", b"content-length"):
            headers.append((name, value.strip()))
    return method, target, version.removeprefix(b"HTTP/"), headers, got.body


# --- the property -------------------------------------------------------------------------


def _read(conn: socket.socket, size: int) -> bytes:
    got = b""
    try:
        while len(got) < size:
            data = conn.recv(65536)
            if not data:
                break
            got += data
    except ConnectionResetError:
        pass
    return got


def _rest(conn: socket.socket) -> bytes:
    got = b""
    try:
        while data := conn.recv(65536):
            got += data
    except ConnectionResetError:
        pass
    return got


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # caplog: cleared by each example
    ],
)
@given(
    requests=st.lists(a_request(), min_size=1, max_size=3),
    splits=st.lists(st.integers(1, 400), max_size=4),
)
def test_the_sidecar_agrees_with_h11(
    edge: tuple[Upstream, RunningSidecar],
    caplog: pytest.LogCaptureFixture,
    requests: list[bytes],
    splits: list[int],
) -> None:
    upstream, sidecar = edge
    upstream.received.clear()
    caplog.clear()
    data = b"".join(requests)
    expected = reference(data)
    with connect(sidecar) as conn:
        conn.settimeout(5)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        at = 0
        try:
            for step in [*splits, len(data)]:
                conn.sendall(data[at : at + step])
                at += step
        except OSError:
            pass  # refused and closed before all was sent
        size = len(OK) * len(expected.forwarded)
        answers = _read(conn, size)
        assert answers[:size] == OK * len(expected.forwarded), (data, expected)
        if expected.refused:
            rest = answers[size:] + _rest(conn)
            assert rest.startswith((b"HTTP/1.1 4", b"HTTP/1.1 5")), (data, rest)
    assert [received(r) for r in upstream.received] == expected.forwarded, data
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, (data, [r.getMessage() for r in errors], caplog.text)
