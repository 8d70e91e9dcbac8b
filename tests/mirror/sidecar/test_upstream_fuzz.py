"""Property-based test of the sidecar's provider side: answers framed in every way the RFCs
allow (Content-Length, chunked with extensions and trailers, until the close), interim answers
before them, broken status lines, and bytes past their end. The app must get the answer as
sent, interim `103` included and `100` dropped, and never a byte past its end; an invalid
head or a `101` becomes a 502 in the provider's shape (or, when an interim answer already
reached the app, a cut after it); nothing is logged as an error.

Examples: half of `SHADOWJUDGE_FUZZ_EXAMPLES` (default 2,000, so 1,000 here: about 10 s).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.config import ProviderSettings, SidecarSettings
from mirror.events import ProviderKind
from tests.mirror.sidecar.test_wire import (
    REQUEST,
    Upstream,
    connect,
    post,
    read_all,
    serve_upstream,
)
from tests.sidecar import RunningSidecar, run_sidecar

EXAMPLES = max(100, int(os.environ.get("SHADOWJUDGE_FUZZ_EXAMPLES", "2000")) // 2)


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[Upstream, RunningSidecar]]:
    with serve_upstream() as upstream:
        providers = {"openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=upstream.url)}
        with run_sidecar(providers, sidecar=SidecarSettings(upstream_keepalive_s=2)) as sidecar:
            yield upstream, sidecar


@dataclass
class Answer:
    sent: bytes  # what the upstream sends
    expected: bytes | None  # what the app gets, or None: a 502
    interim: bytes = b""  # the interim answers the app gets before the final one


_NAME = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8).filter(
    lambda n: n not in ("content-length", "transfer-encoding", "connection")
)
_VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=,", max_size=12).map(str.strip)


@st.composite
def an_answer(draw: st.DrawFn) -> Answer:
    interim = b""
    forwarded_interim = b""
    for code in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2)):
        piece = b"HTTP/1.1 %d Info\r\nLink: </x>\r\n\r\n" % code
        interim += piece
        if code != 100:
            forwarded_interim += piece
    status = draw(st.sampled_from([200, 200, 200, 201, 400, 429, 500, 204, 304, 101, 2000, 99]))
    headers = b"".join(
        f"{n}: {v}\r\n".encode() for n, v in draw(st.lists(st.tuples(_NAME, _VALUE), max_size=4))
    )
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if status in (204, 304):
        framing, body = "length", b""
    if framing == "length":
        head = b"HTTP/1.1 %d X\r\n%sContent-Length: %d\r\n\r\n" % (status, headers, len(body))
        if status in (204, 304):
            head = b"HTTP/1.1 %d X\r\n%s\r\n" % (status, headers)
        framed = body
    elif framing == "chunked":
        head = b"HTTP/1.1 %d X\r\n%sTransfer-Encoding: chunked\r\n\r\n" % (status, headers)
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        ext = draw(st.sampled_from([b"", b";a=b", b";q"]))
        framed = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces if p)
        trailer = draw(st.sampled_from([b"", b"X-T: 1\r\n"]))
        framed += b"0\r\n" + trailer + b"\r\n"
    else:
        head = b"HTTP/1.1 %d X\r\n%sConnection: close\r\n\r\n" % (status, headers)
        framed = body
    extra = b"" if framing == "close" else draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))
    sent = interim + head + framed + extra
    if status in (101, 2000, 99):
        return Answer(sent, None, forwarded_interim)
    return Answer(sent, forwarded_interim + head + framed, forwarded_interim)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(answer=an_answer())
def test_the_app_gets_the_answer_as_framed_and_nothing_past_it(
    edge: tuple[Upstream, RunningSidecar], caplog: pytest.LogCaptureFixture, answer: Answer
) -> None:
    upstream, sidecar = edge
    upstream.received.clear()
    caplog.clear()
    upstream.script = lambda r: (answer.sent, True, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST, b"Connection: close\r\n"))
        got = read_all(conn)
    if answer.expected is None and answer.interim:
        assert got == answer.interim, answer.sent  # bytes reached the app: then a cut
    elif answer.expected is None:
        assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), (answer.sent, got)
        assert b'"error"' in got
    else:
        assert got == answer.expected, answer.sent
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, caplog.text
