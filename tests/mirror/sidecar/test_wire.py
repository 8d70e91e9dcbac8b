"""HTTP/1.1 at the byte level, through the sidecar: what the SDK suites cannot see.

A scripted upstream records the raw requests it gets and answers with raw bytes; the app is a
raw socket. So framing, header case, keep-alive, pipelining, HEAD, `Expect`, upgrade offers,
close-delimited answers and timeouts are checked as bytes, not through a client library that
would smooth them over.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from mirror.config import ProviderSettings, SidecarSettings
from mirror.events import ErrorKind, ProviderKind
from tests.sidecar import RunningSidecar, run_sidecar

CHAT = b'{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'  # noqa: E501


@dataclass
class Received:
    head: bytes
    body: bytes

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header_lines(self) -> list[bytes]:
        return self.head.split(b"\r\n")[1:]

    def header(self, name: bytes) -> bytes | None:
        for line in self.header_lines():
            key, _, value = line.partition(b":")
            if key.lower() == name.lower():
                return value.strip()
        return None


Script = Callable[[Received], tuple[bytes, bool, float]]  # answer, close after, stall seconds


@dataclass
class Upstream:
    script: Script
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    url: str = ""


def _read_request(stream: socket.socket, buffer: bytearray) -> Received | None:
    while b"\r\n\r\n" not in buffer:
        data = stream.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < length:
        data = stream.recv(65536)
        if not data:
            return None
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return Received(head, body)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serve_upstream() as state:
        yield state


@contextmanager
def serve_upstream(tls: ssl.SSLContext | None = None) -> Iterator[Upstream]:
    state = Upstream(script=lambda r: (ok(CHAT), False, 0.0))
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with lock:
                state.connections += 1
                state.open_now += 1
                state.most_open = max(state.most_open, state.open_now)
            buffer = bytearray()
            stream: socket.socket = self.request
            try:
                if tls is not None:
                    stream = tls.wrap_socket(stream, server_side=True)
                while (received := _read_request(stream, buffer)) is not None:
                    state.received.append(received)
                    answer, close, stall = state.script(received)
                    if stall:
                        stream.sendall(answer[: len(answer) // 2])
                        time.sleep(stall)
                        stream.sendall(answer[len(answer) // 2 :])
                    else:
                        stream.sendall(answer)
                    if close:
                        return
            except OSError:
                return
            finally:
                stream.close()
                with lock:
                    state.open_now -= 1

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    host = "localhost" if tls else "127.0.0.1"
    state.url = f"{'https' if tls else 'http'}://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def sidecar_for(upstream: Upstream, **settings: float) -> Iterator[RunningSidecar]:
    providers = {"openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=upstream.url)}
    return run_sidecar(  # type: ignore[return-value]
        providers, sidecar=SidecarSettings(upstream_keepalive_s=2, **settings)
    )


@pytest.fixture
def sidecar(upstream: Upstream) -> Iterator[RunningSidecar]:
    with sidecar_for(upstream) as running:
        yield running


def connect(sidecar: RunningSidecar) -> socket.socket:
    host, port = sidecar.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    return conn


def read_until(conn: socket.socket, ending: bytes, got: bytes = b"") -> bytes:
    while not got.endswith(ending):
        data = conn.recv(65536)
        if not data:
            break
        got += data
    return got


def read_all(conn: socket.socket) -> bytes:
    """Everything up to the end of the connection, whether closed or cut (reset)."""
    got = b""
    try:
        while data := conn.recv(65536):
            got += data
    except ConnectionResetError:
        pass
    return got


def post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


REQUEST = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'


def test_the_answer_reaches_the_app_byte_for_byte(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    """Header case, header order, chunk sizes and the terminal chunk: all as the upstream sent."""
    halves = (CHAT[:37], CHAT[37:])
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Request-ID: req-Abc\r\ncontent-type: application/json\r\n"
        b"OpenAI-Processing-Ms: 12\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(h), h) for h in halves)
        + b"0\r\n\r\n"
    )
    upstream.script = lambda r: (answer, False, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        assert read_until(conn, b"0\r\n\r\n") == answer
    (call,) = sidecar.calls(expected=1)
    assert call.primary.ok and call.primary.output is not None
    assert call.primary.output.text == "hi"


def test_the_request_is_reframed_and_our_headers_stay_home(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    chunked = (
        b"POST /v1/chat/completions?api-version=2 HTTP/1.1\r\nHost: sidecar\r\n"
        b"X-Custom-Case: Kept\r\nX-Shadow-Team: search\r\nKeep-Alive: timeout=5\r\n"
        b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(REQUEST), REQUEST)
    )
    with connect(sidecar) as conn:
        conn.sendall(chunked)
        read_until(conn, CHAT)
    (got,) = upstream.received
    assert got.request_line == b"POST /v1/chat/completions?api-version=2 HTTP/1.1"
    assert got.body == REQUEST
    assert got.header(b"content-length") == str(len(REQUEST)).encode()
    assert got.header(b"host") == upstream.url.removeprefix("http://").encode()
    assert b"X-Custom-Case: Kept" in got.header_lines()  # the app's spelling
    for dropped in (b"transfer-encoding", b"x-shadow-team", b"keep-alive", b"connection"):
        assert got.header(dropped) is None
    (call,) = sidecar.calls(expected=1)
    assert call.segment == {"team": "search"}


def test_one_upstream_connection_serves_calls_in_turn(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    for _ in range(3):
        with connect(sidecar) as conn:
            for _ in range(3):
                conn.sendall(post(b"/v1/chat/completions", REQUEST))
                assert read_until(conn, CHAT).endswith(CHAT)
    assert len(upstream.received) == 9
    assert upstream.connections == 1


def test_upstream_connection_close_ends_the_app_connection_too(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    upstream.script = lambda r: (ok(CHAT, b"Connection: close\r\n"), True, 0.0)
    for _ in range(2):
        with connect(sidecar) as conn:
            conn.sendall(post(b"/v1/chat/completions", REQUEST))
            assert read_all(conn) == ok(CHAT, b"Connection: close\r\n")
    assert upstream.connections == 2


def test_an_answer_without_length_ends_with_the_connection(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + CHAT
    upstream.script = lambda r: (answer, True, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        assert read_all(conn) == answer
    (call,) = sidecar.calls(expected=1)
    assert call.primary.ok and call.primary.error is None


def test_head_pipelining_and_the_next_request(upstream: Upstream, sidecar: RunningSidecar) -> None:
    """A HEAD answer announces a length it does not send; two requests sent at once are
    answered in order on the same connection."""

    def script(r: Received) -> tuple[bytes, bool, float]:
        if r.request_line.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", False, 0.0
        return ok(r.request_line.split(b" ")[1]), False, 0.0

    upstream.script = script
    with connect(sidecar) as conn:
        conn.sendall(b"HEAD /v1/models HTTP/1.1\r\nHost: s\r\n\r\n")
        assert read_until(conn, b"\r\n\r\n") == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        conn.sendall(
            b"".join(b"GET /v1/models/%s HTTP/1.1\r\nHost: s\r\n\r\n" % m for m in (b"a", b"b"))
        )
        got = read_until(conn, b"/v1/models/b")
    assert got == ok(b"/v1/models/a") + ok(b"/v1/models/b")


def test_expect_continue_is_answered_here(upstream: Upstream, sidecar: RunningSidecar) -> None:
    with connect(sidecar) as conn:
        expecting = post(b"/v1/chat/completions", REQUEST, b"Expect: 100-continue\r\n")
        head, _, body = expecting.partition(b"\r\n\r\n")
        conn.sendall(head + b"\r\n\r\n")
        assert read_until(conn, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        assert read_until(conn, CHAT) == ok(CHAT)
    (got,) = upstream.received
    assert got.body == REQUEST and got.header(b"expect") is None


def test_an_upgrade_offer_is_declined_and_the_body_still_read(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    offer = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"  # noqa: E501
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST, offer) + post(b"/v1/embeddings", b"{}"))
        assert read_until(conn, ok(CHAT) * 2) == ok(CHAT) * 2
    first, second = upstream.received
    assert first.body == REQUEST and first.header(b"upgrade") is None
    assert second.request_line == b"POST /v1/embeddings HTTP/1.1"


def test_http10_apps_are_answered_in_their_version(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        assert read_all(conn) == ok(CHAT)
    assert upstream.received[0].request_line.endswith(b"HTTP/1.0")


def test_garbage_gets_a_400_and_a_closed_connection(sidecar: RunningSidecar) -> None:
    with connect(sidecar) as conn:
        conn.sendall(b"\x16\x03\x01 this is TLS, not HTTP\r\n\r\n")
        answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"invalid HTTP request" in answer


def test_interim_answers_pass_and_the_final_one_counts(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
    upstream.script = lambda r: (early + ok(CHAT), False, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        assert read_until(conn, CHAT) == early + ok(CHAT)
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        assert read_until(conn, CHAT) == early + ok(CHAT)
    assert [c.primary.status_code for c in sidecar.calls(expected=2)] == [200, 200]


def test_a_silent_upstream_meets_the_read_timeout(upstream: Upstream) -> None:
    upstream.script = lambda r: (ok(CHAT), False, 2.0)  # half the answer, then 2 s of silence
    with sidecar_for(upstream, read_timeout_s=0.3) as sidecar, connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        got = read_all(conn)  # cut once the timeout passes
        assert got == ok(CHAT)[: len(ok(CHAT)) // 2]
        (call,) = sidecar.calls(expected=1)
    assert call.primary.error is not None
    assert call.primary.error.kind is ErrorKind.INCOMPLETE
    assert "read timeout" in call.primary.error.message


def test_the_connection_bound_queues_calls_instead_of_failing_them(upstream: Upstream) -> None:
    upstream.script = lambda r: (ok(CHAT), False, 0.2)
    with sidecar_for(upstream, max_connections=1) as sidecar:
        results: list[bytes] = []

        def call() -> None:
            with connect(sidecar) as conn:
                conn.sendall(post(b"/v1/chat/completions", REQUEST))
                results.append(read_until(conn, CHAT))

        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert results == [ok(CHAT)] * 3
    assert upstream.most_open == 1


def test_a_capture_bug_costs_the_capture_not_the_call(
    upstream: Upstream, sidecar: RunningSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in capture")

    monkeypatch.setattr("mirror.sidecar.proxy.new_exchange", broken)
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        assert read_until(conn, CHAT) == ok(CHAT)
    assert sidecar.metric("shadowjudge_sidecar_dropped_total", reason="capture_error") == 1
    assert sidecar.calls() == []


def test_https_upstreams_are_verified_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The providers are HTTPS: the certificate is checked against the system's trust store
    (here a test CA named by SSL_CERT_FILE, as an operator would) and the connection reused."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    with serve_upstream(server_context) as upstream, sidecar_for(upstream) as sidecar:
        with connect(sidecar) as conn:
            for _ in range(2):
                conn.sendall(post(b"/v1/chat/completions", REQUEST))
                assert read_until(conn, CHAT) == ok(CHAT)
        assert upstream.connections == 1
        assert (
            upstream.received[0].header(b"host") == upstream.url.removeprefix("https://").encode()
        )
    monkeypatch.delenv("SSL_CERT_FILE")
    with serve_upstream(server_context) as untrusted, sidecar_for(untrusted) as sidecar:
        with connect(sidecar) as conn:
            conn.sendall(post(b"/v1/chat/completions", REQUEST))
            answer = read_until(conn, b"}}")
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"SSLCertVerificationError" in answer
    assert untrusted.received == []


def test_a_forwarding_bug_cuts_the_connection_and_says_why(
    sidecar: RunningSidecar, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in routing")

    monkeypatch.setattr("mirror.sidecar.proxy.route", broken)
    with connect(sidecar) as conn:
        conn.sendall(post(b"/v1/chat/completions", REQUEST))
        assert read_all(conn) == b""
    assert "a bug in routing" in caplog.text
