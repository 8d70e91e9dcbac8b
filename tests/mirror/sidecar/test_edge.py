"""The sidecar's HTTP/1.1 edge against hostile and broken peers (issue 13): one raw-socket test
per rule, a running sidecar between a raw app socket and a recording upstream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from mirror.config import ProviderSettings, SidecarSettings
from mirror.events import ProviderKind
from tests.mirror.sidecar.test_wire import (
    CHAT,
    REQUEST,
    Received,
    Upstream,
    connect,
    ok,
    post,
    read_all,
    read_until,
    serve_upstream,
)
from tests.sidecar import RunningSidecar, run_sidecar

CHAT_PATH = b"/v1/chat/completions"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serve_upstream() as state:
        yield state


def edge_sidecar(upstream: Upstream, **settings: float) -> AbstractContextManager[RunningSidecar]:
    providers = {
        "openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=upstream.url + "/base"),
        "anthropic": ProviderSettings(kind=ProviderKind.ANTHROPIC, base_url=upstream.url),
    }
    return run_sidecar(providers, sidecar=SidecarSettings(upstream_keepalive_s=2, **settings))


@pytest.fixture
def sidecar(upstream: Upstream) -> Iterator[RunningSidecar]:
    with edge_sidecar(upstream, max_body_bytes=100_000) as running:
        yield running


def exchange(sidecar: RunningSidecar, data: bytes) -> bytes:
    with connect(sidecar) as conn:
        conn.sendall(data)
        return read_all(conn)


def refused(answer: bytes, status: int) -> dict[str, object]:
    """The sidecar's own answer: `status`, the connection closed, a provider-shaped error."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    parsed: dict[str, object] = json.loads(body)
    assert "error" in parsed
    return parsed


# --- 1. bounded resources -----------------------------------------------------------------


def test_an_endless_header_is_cut_at_the_head_limit_with_431(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    with connect(sidecar) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: s\r\nX-Long: ")
        try:
            for _ in range(200):  # 12.8 MB offered; the sidecar stops reading at 64 KiB
                conn.sendall(b"a" * 65536)
        except OSError:
            pass
        answer = read_all(conn)
    refused(answer, 431)
    assert upstream.received == []


def test_an_endless_target_is_414(upstream: Upstream, sidecar: RunningSidecar) -> None:
    answer = exchange(sidecar, b"GET /v1/" + b"m" * 70_000 + b" HTTP/1.1\r\nHost: s\r\n\r\n")
    refused(answer, 414)
    assert upstream.received == []


def test_more_than_100_header_fields_is_431(upstream: Upstream, sidecar: RunningSidecar) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    refused(exchange(sidecar, post(CHAT_PATH, REQUEST, many)), 431)
    fine = b"".join(b"X-H%d: v\r\n" % i for i in range(96))  # + Host, Content-Type, -Length
    assert read_until_chat(sidecar, post(CHAT_PATH, REQUEST, fine)) == ok(CHAT)
    assert len(upstream.received) == 1


def read_until_chat(sidecar: RunningSidecar, data: bytes) -> bytes:
    with connect(sidecar) as conn:
        conn.sendall(data)
        return read_until(conn, CHAT)


def test_a_head_that_does_not_end_in_time_is_408(upstream: Upstream) -> None:
    with edge_sidecar(upstream, head_timeout_s=0.3) as sidecar, connect(sidecar) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: s\r\n")
        started = time.monotonic()
        answer = read_all(conn)
        assert time.monotonic() - started < 2
    refused(answer, 408)
    assert upstream.received == []


def test_an_announced_body_over_the_cap_is_413_before_any_byte_of_it(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    with connect(sidecar) as conn:
        conn.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: s\r\nContent-Length: %d\r\n\r\n" % (1 << 30)
        )
        answer = read_all(conn)
    body = refused(answer, 413)
    assert body["type"] == "error"  # the Anthropic shape: the path says who it was for
    assert upstream.received == []


def test_a_chunked_body_over_the_cap_is_413(upstream: Upstream, sidecar: RunningSidecar) -> None:
    chunk = b"%x\r\n%s\r\n" % (60_000, b"x" * 60_000)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = refused(exchange(sidecar, head + chunk * 2 + b"0\r\n\r\n"), 413)
    assert "param" in body["error"]  # type: ignore[operator]  # the OpenAI shape
    assert upstream.received == []


# --- 3. framing by the RFCs ---------------------------------------------------------------


def test_trailers_are_dropped_never_merged_into_the_head(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    data = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\nX-Trailer: smuggled\r\nAuthorization: Bearer x\r\n\r\n"
        % (len(REQUEST), REQUEST)
    )
    assert read_until_chat(sidecar, data) == ok(CHAT)
    (got,) = upstream.received
    assert got.body == REQUEST
    assert got.header(b"x-trailer") is None and got.header(b"authorization") is None


@pytest.mark.parametrize(
    "target", [b"http://evil.example/v1/chat/completions", b"*", b"evil.example:443"]
)
def test_targets_other_than_origin_form_are_400(
    upstream: Upstream, sidecar: RunningSidecar, target: bytes
) -> None:
    method = b"CONNECT" if target.endswith(b":443") else b"POST"
    data = post(CHAT_PATH, REQUEST).replace(b"POST " + CHAT_PATH, method + b" " + target, 1)
    refused(exchange(sidecar, data), 400)
    assert upstream.received == []


@pytest.mark.parametrize(
    "path",
    [
        b"/teamb/../../v1/chat/completions",
        b"/openai/../v1/chat/completions",
        b"/openai/%2e%2E/v1/chat/completions",
        b"/v1/../../chat/completions",
    ],
)
def test_dot_segments_that_leave_the_root_or_prefix_are_400(
    upstream: Upstream, sidecar: RunningSidecar, path: bytes
) -> None:
    refused(exchange(sidecar, post(path, REQUEST)), 400)
    assert upstream.received == []


def test_dot_segments_are_removed_before_routing(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    path = b"/openai/v1/x/%2E%2e/./chat/completions?a=../b"
    assert read_until_chat(sidecar, post(path, REQUEST)) == ok(CHAT)
    (got,) = upstream.received
    assert got.request_line == b"POST /base/v1/chat/completions?a=../b HTTP/1.1"


def test_a_request_line_with_runs_of_spaces_is_forwarded_with_single_ones(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    """RFC 9112 3 lets a recipient read the request line on word boundaries (llhttp does); the
    provider gets the line rebuilt, so it never has to make that choice itself."""
    request = post(b"/openai/v1/chat/completions", REQUEST)
    spaced = request.replace(b"POST ", b"POST   ", 1).replace(b" HTTP/1.1", b"  HTTP/1.1", 1)
    assert read_until_chat(sidecar, spaced) == ok(CHAT)
    (got,) = upstream.received
    assert got.request_line == b"POST /base/v1/chat/completions HTTP/1.1"


@pytest.mark.parametrize(
    ("coding", "status"),
    # llhttp itself refuses chunked applied twice, as a framing error: 400
    [(b"gzip, chunked", 501), (b"chunked, chunked", 400), (b"identity", 501), (b"gzip", 501)],
)
def test_transfer_codings_other_than_chunked_are_refused(
    upstream: Upstream, sidecar: RunningSidecar, coding: bytes, status: int
) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: %s\r\n\r\n"
    answer = exchange(sidecar, head % coding + b"2\r\n{}\r\n0\r\n\r\n")
    refused(answer, status)
    assert upstream.received == []


def test_headers_named_in_connection_are_not_forwarded(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    extra = b"Connection: keep-alive, X-Hop, X-Other\r\nX-Hop: 1\r\nX-Other: 2\r\nX-Kept: 3\r\n"
    assert read_until_chat(sidecar, post(CHAT_PATH, REQUEST, extra)) == ok(CHAT)
    (got,) = upstream.received
    assert got.header(b"x-hop") is None and got.header(b"x-other") is None
    assert got.header(b"connection") is None and got.header(b"x-kept") == b"3"


@pytest.mark.parametrize("hosts", [b"", b"Host: a\r\nHost: b\r\n"], ids=["no Host", "two Hosts"])
def test_http11_needs_exactly_one_host(
    upstream: Upstream, sidecar: RunningSidecar, hosts: bytes
) -> None:
    data = post(CHAT_PATH, REQUEST).replace(b"Host: sidecar\r\n", hosts)
    refused(exchange(sidecar, data), 400)
    assert upstream.received == []


def test_a_bad_request_in_a_pipeline_comes_after_the_answers_before_it(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    upstream.script = lambda r: (ok(CHAT), False, 0.2)  # the answers take a while
    data = post(CHAT_PATH, REQUEST) * 2 + b"GARBAGE \x00\r\n\r\n"
    answer = exchange(sidecar, data)
    assert answer.startswith(ok(CHAT) * 2)
    refused(answer[len(ok(CHAT)) * 2 :], 400)
    assert len(upstream.received) == 2


# --- 4. the upstream's answer framed before it is forwarded -------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTQ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        b"garbage\r\n\r\n",
    ],
)
def test_an_invalid_upstream_head_is_a_502_in_the_provider_shape(
    upstream: Upstream, sidecar: RunningSidecar, answer: bytes
) -> None:
    upstream.script = lambda r: (answer, False, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(CHAT_PATH, REQUEST))
        got = read_until(conn, b"}}")
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), got
    assert "error" in json.loads(body)


def test_an_unasked_100_continue_is_skipped(upstream: Upstream, sidecar: RunningSidecar) -> None:
    upstream.script = lambda r: (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(CHAT), False, 0.0)
    assert read_until_chat(sidecar, post(CHAT_PATH, REQUEST)) == ok(CHAT)


def test_a_kept_alive_connection_closed_unanswered_gets_the_request_once_more(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    """The provider closed a kept-alive connection just as the next request went out on it
    (its idle timeout racing ours): the request goes again on a fresh connection, once,
    instead of a 502 for an answer that was never begun. A fresh connection that closes
    unanswered is a 502."""
    answers = iter([(ok(CHAT), False, 0.0), (b"", True, 0.0), (ok(CHAT), False, 0.0)])
    upstream.script = lambda r: next(answers)
    with connect(sidecar) as conn:
        for _ in range(2):
            conn.sendall(post(CHAT_PATH, REQUEST))
            assert read_until(conn, CHAT) == ok(CHAT)
    assert len(upstream.received) == 3 and upstream.connections == 2
    assert (
        sidecar.metric("shadowjudge_sidecar_upstream_stale_retries_total", provider="openai") == 1
    )
    assert sidecar.metric("shadowjudge_sidecar_upstream_errors_total", provider="openai") == 0

    upstream.script = lambda r: (b"", True, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(CHAT_PATH, REQUEST))
        got = read_until(conn, b"}}")
    assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), got
    assert len(upstream.received) == 5  # the kept-alive connection, then one fresh one


def test_a_kept_alive_connection_closed_after_an_interim_answer_is_not_sent_again(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    """Once a byte of the answer (here a 103) reached the app, a close is a cut, never a
    second request."""
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    answers = iter([(ok(CHAT), False, 0.0), (early, True, 0.0)])
    upstream.script = lambda r: next(answers)
    with connect(sidecar) as conn:
        conn.sendall(post(CHAT_PATH, REQUEST))
        assert read_until(conn, CHAT) == ok(CHAT)
        conn.sendall(post(CHAT_PATH, REQUEST))
        assert read_all(conn) == early
    assert len(upstream.received) == 2
    assert (
        sidecar.metric("shadowjudge_sidecar_upstream_stale_retries_total", provider="openai") == 0
    )


def test_bytes_past_the_answer_are_dropped_and_the_connection_not_reused(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"
    upstream.script = lambda r: (ok(CHAT) + smuggled, False, 0.0)
    with connect(sidecar) as conn:
        for _ in range(2):
            conn.sendall(post(CHAT_PATH, REQUEST))
            assert read_until(conn, CHAT) == ok(CHAT)
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(100)  # nothing more came
    assert upstream.connections == 2


def test_bytes_past_a_chunked_answer_are_dropped(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    )
    upstream.script = lambda r: (chunked + b"HTTP/1.1 200 OK\r\n\r\nevil", False, 0.0)
    with connect(sidecar) as conn:
        conn.sendall(post(CHAT_PATH, REQUEST))
        got = read_until(conn, b"T: 1\r\n\r\n")
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(100)
    assert got == chunked


# --- 5. timers that fit the state ---------------------------------------------------------


def test_a_body_that_pauses_too_long_is_408(upstream: Upstream) -> None:
    with edge_sidecar(upstream, body_idle_timeout_s=0.3) as sidecar, connect(sidecar) as conn:
        data = post(CHAT_PATH, REQUEST)
        conn.sendall(data[:-10])
        refused(read_all(conn), 408)
    assert upstream.received == []


def test_a_slow_body_that_keeps_coming_is_read_whole(upstream: Upstream) -> None:
    settings = {"head_timeout_s": 0.4, "body_idle_timeout_s": 0.4}
    with edge_sidecar(upstream, **settings) as sidecar, connect(sidecar) as conn:
        data = post(CHAT_PATH, REQUEST)
        head_end = data.index(b"\r\n\r\n") + 4
        conn.sendall(data[:head_end])
        for i in range(head_end, len(data), 12):  # ~1.2 s in all, no pause over 0.2 s
            time.sleep(0.2)
            conn.sendall(data[i : i + 12])
        assert read_until(conn, CHAT) == ok(CHAT)
    assert upstream.received[0].body == REQUEST


def test_healthz_answers_at_once_while_a_huge_head_trickles_in(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    stop = threading.Event()

    def trickle() -> None:
        with connect(sidecar) as conn:
            conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: s\r\nX-Big: ")
            sent = 0
            try:
                while sent < 8 << 20 and not stop.is_set():
                    conn.sendall(b"b" * 4096)
                    sent += 4096
                    time.sleep(0.001)
            except OSError:
                pass

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        time.sleep(0.1)
        slowest = 0.0
        for _ in range(5):
            with connect(sidecar) as conn:
                started = time.perf_counter()
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n")
                answer = read_until(conn, b"}")
                slowest = max(slowest, time.perf_counter() - started)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        stop.set()
        thread.join(10)
    assert slowest < 0.1
    assert upstream.received == []


def test_refusals_are_counted(upstream: Upstream, sidecar: RunningSidecar) -> None:
    refused(exchange(sidecar, b"GET / HTTP/1.1\r\n\r\n"), 400)
    assert sidecar.metric("shadowjudge_sidecar_refused_total", status="400") == 1


def test_the_request_is_forwarded_with_its_body_once(
    upstream: Upstream, sidecar: RunningSidecar
) -> None:
    body = b'{"x":"' + b"y" * 90_000 + b'"}'
    assert read_until_chat(sidecar, post(CHAT_PATH, body)) == ok(CHAT)
    (got,) = upstream.received
    assert isinstance(got, Received) and got.body == body
