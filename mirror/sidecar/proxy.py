"""The sidecar: a transparent reverse proxy for the provider APIs that captures as it forwards.

It speaks HTTP/1.1 on asyncio protocols (`mirror.sidecar.wire`, which says why: an ASGI server
and an HTTP client cost the live path more than a millisecond per call on this machine). What the
app sees is what the provider sent, byte for byte: status line, headers in their case,
framing and body, compressed or not, JSON or not, each piece forwarded before it is looked at;
no timeout shorter than the provider's own.

The request goes upstream re-framed: the body read whole (capture needs it whole), then sent
with a Content-Length, as its own write after the head (the body is held once: see `wire`);
hop-by-hop headers and every header the `Connection` header names, `Host` and our own headers
dropped (`x-shadow-*` segment labels and the runner's shadow-traffic marker), `Host` set to
the upstream's; the path with its dot-segments removed (`target`); the method, query, HTTP
version and every other header as the app sent them. The framing rules and limits a request
meets before it gets here are in `wire`; a path that would climb out of the provider's base
path or out of its `/<provider>/` prefix is refused here with 400. Every refusal is in the
provider's own error shape (`error_body`), and closes the connection.

Routing: `/<provider>/v1/...` goes to that configured provider; any other path goes to the
default provider of its dialect — Anthropic when the path is `/v1/messages...` or the request
carries `anthropic-version`, OpenAI otherwise. Unreachable upstream: a 502 in that provider's
own error shape. When the app goes away, the upstream connection is closed at once. An upstream
that breaks mid-answer has the app's connection cut the same way. Protocol upgrades
(WebSocket) are not proxied: the provider APIs it mirrors do not use them over HTTP/1.1.

Capture costs the live path a list append per body chunk and one `Publisher.submit` at the end;
all parsing happens later in the publisher's task. Any failure in that bookkeeping drops the
capture (counted), never the call.

Staged rollout: when a migration declares `rollout:` and serves a weight above 0, a call the
`RolloutRouter` chooses is answered by the candidate arm instead (`mirror.sidecar.served`,
which falls back to this byte pipe, unchanged, whenever the candidate cannot serve). Without a
live weight a call pays one attribute check (no rollout configured) or a version comparison.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from mirror.config import CaptureSettings, ProviderSettings, SidecarSettings
from mirror.events import (
    SEGMENT_HEADER_PREFIX,
    SHADOW_TRAFFIC_HEADER,
    Api,
    ErrorInfo,
    ErrorKind,
    ProviderKind,
)
from mirror.migrations import MigrationSettings
from mirror.rollout import Weights
from mirror.sidecar.capture import Exchange, api_for, lower_headers, new_exchange
from mirror.sidecar.metrics import CONTENT_TYPE, DROP_CAPTURE_ERROR, SidecarMetrics
from mirror.sidecar.pool import UpstreamPool
from mirror.sidecar.publisher import Publisher
from mirror.sidecar.rollout import SERVED_APIS, RolloutRouter
from mirror.sidecar.served import CandidateServer
from mirror.sidecar.target import remove_dot_segments
from mirror.sidecar.upstream import Origin
from mirror.sidecar.wire import (
    REASONS,
    AppConnection,
    Limits,
    Refusal,
    Request,
    simple_response,
)

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
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
)
_SHADOW = SHADOW_TRAFFIC_HEADER.encode()
_NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect", _SHADOW}
_SEGMENT_PREFIX = SEGMENT_HEADER_PREFIX.encode()
_ANTHROPIC_VERSION = b"anthropic-version"
_LOCAL = {b"/metrics", b"/healthz"}

_CLIENT_LEFT = ErrorInfo(kind=ErrorKind.CLIENT_DISCONNECT, message="the app closed the connection")


def default_upstreams(
    providers: Mapping[str, ProviderSettings], chosen: Mapping[ProviderKind, str]
) -> dict[ProviderKind, str]:
    defaults: dict[ProviderKind, str] = {}
    for kind in ProviderKind:
        if kind in chosen:
            defaults[kind] = chosen[kind]
        elif kind.value in providers and providers[kind.value].kind is kind:
            defaults[kind] = kind.value
        else:
            named = [name for name, p in providers.items() if p.kind is kind]
            if named:
                defaults[kind] = named[0]
    return defaults


def error_body(kind: ProviderKind, message: str) -> bytes:
    """An error body in the provider's own shape, so the app's SDK parses it as usual."""
    if kind is ProviderKind.ANTHROPIC:
        return orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return orjson.dumps(
        {"error": {"message": message, "type": "api_error", "param": None, "code": None}}
    )


@dataclass(frozen=True, slots=True)
class Upstream:
    """A provider as the wire sees it: where to connect and what to put in the request head."""

    name: str
    kind: ProviderKind
    origin: Origin
    host: bytes  # the Host header
    base_path: bytes  # prefixed to the app's path

    @classmethod
    def of(cls, name: str, provider: ProviderSettings) -> Upstream:
        parts = urlsplit(provider.base_url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        return cls(
            name=name,
            kind=provider.kind,
            origin=Origin(parts.scheme, host, port),
            host=parts.netloc.rpartition("@")[2].encode("idna"),
            base_path=parts.path.rstrip("/").encode(),
        )


class Forward:
    """One request on its way: reports from the upstream connection, the answer's bookkeeping."""

    __slots__ = (
        "api",
        "app",
        "exchange",
        "keep_alive",
        "sidecar",
        "started",
        "status",
        "upstream",
    )

    def __init__(
        self,
        sidecar: Sidecar,
        app: AppConnection,
        upstream: Upstream,
        api: str,
        exchange: Exchange | None,
        keep_alive: bool,
    ) -> None:
        self.sidecar = sidecar
        self.app = app
        self.upstream = upstream
        self.api = api
        self.exchange = exchange
        self.keep_alive = keep_alive
        self.started = time.perf_counter()
        self.status = 0

    # --- wire.Listener -----------------------------------------------------------------------

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        exchange = self.exchange
        if exchange is not None:
            exchange.status = status
            exchange.response_headers = headers

    def response_body(self, data: bytes, arrived: float) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        try:
            exchange.record(data, arrived, self.sidecar.max_body_bytes)
        except Exception:  # noqa: BLE001 - capture may fail; the call may not
            self.exchange = None
            self.sidecar.capture_failed()

    def response_done(self, keep_alive: bool) -> None:
        self.end(None)
        self.app.done(self.keep_alive and keep_alive)

    def response_failed(self, reason: str, answered: bool) -> None:
        self.sidecar.metrics.upstream_errors.labels(self.upstream.name).inc()
        if answered:
            log.warning("upstream %s broke mid-answer: %s", self.upstream.name, reason)
            self.end(ErrorInfo(kind=ErrorKind.INCOMPLETE, message=f"upstream broke: {reason}"))
            self.app.cut()
            self.app.done(keep_alive=False)
        else:
            self.unreachable(reason)

    def app_left(self) -> None:
        self.end(_CLIENT_LEFT)
        self.app.done(keep_alive=False)

    # --- ends --------------------------------------------------------------------------------

    def unreachable(self, reason: str) -> None:
        message = f"shadowjudge sidecar: upstream {self.upstream.name} unreachable: {reason}"
        self.status = 502
        self.sidecar.bad_gateway(self.app, self.upstream.kind, message, self.keep_alive)
        self.end(ErrorInfo(kind=ErrorKind.UNREACHABLE, message=message))

    def end(self, error: ErrorInfo | None) -> None:
        sidecar = self.sidecar
        sidecar.observe(self.api, self.status, self.started)
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        exchange.ended = time.perf_counter()
        exchange.error = error
        if sidecar.publisher is not None:
            sidecar.publisher.submit(exchange)


class Sidecar:
    """Answers the app's requests (a `wire.Handler`). `publisher` None means pass-through only.

    Staged rollout: `migrations` that declare `rollout:` are served at the weights `weights`
    holds (changes applied to it take effect at the next call; without it, a table of no
    changes: the configured start weights); `capture` names the segment labels the match
    and sticky rules read (the defaults without it).
    """

    def __init__(
        self,
        settings: SidecarSettings,
        providers: Mapping[str, ProviderSettings],
        publisher: Publisher | None,
        metrics: SidecarMetrics,
        *,
        migrations: Sequence[MigrationSettings] = (),
        weights: Weights | None = None,
        capture: CaptureSettings | None = None,
    ) -> None:
        self._upstreams = {name: Upstream.of(name, p) for name, p in providers.items()}
        self._defaults = default_upstreams(providers, settings.upstream)
        self.publisher = publisher
        self.metrics = metrics
        self.max_body_bytes = publisher.max_body_bytes if publisher is not None else 0
        self.limits = Limits(
            max_head_bytes=settings.max_head_bytes,
            max_header_fields=settings.max_header_fields,
            max_body_bytes=settings.max_body_bytes,
            head_timeout_s=settings.head_timeout_s,
            body_idle_timeout_s=settings.body_idle_timeout_s,
        )
        self.pool = UpstreamPool(
            max_connections=settings.max_connections,
            keepalive_s=settings.upstream_keepalive_s,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
        )
        self.connections: set[AppConnection] = set()
        self._request_counters: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self.weights = weights if weights is not None else Weights()
        router = RolloutRouter(migrations, providers, capture or CaptureSettings(), self.weights)
        #: None when no migration declares a rollout: the live path then checks only that.
        self.rollout: RolloutRouter | None = router if router.migrations else None
        self.candidates = CandidateServer(
            metrics,
            first_byte_timeout_s=settings.rollout_first_byte_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_connections,
            max_body_bytes=self.max_body_bytes,
            submit=publisher.submit if publisher is not None else None,
            observe=self.observe,
        )
        for migration in router.migrations:
            assert migration.rollout is not None and migration.rollout.arm is not None
            metrics.rollout_arm(migration.name, migration.rollout.arm)

    # --- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        if self.publisher is not None:
            await self.publisher.start()

    async def shutdown(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        await self.candidates.close()
        self.pool.close()
        if self.publisher is not None:
            await self.publisher.stop()

    def connection(self) -> AppConnection:
        """A protocol for a new app connection (the `loop.create_server` factory)."""
        return AppConnection(self, self.connections, self.limits)

    # --- requests (wire.Handler) -----------------------------------------------------------

    def handle(self, app: AppConnection, request: Request) -> None:
        target = request.target
        raw_path, _, query = target.partition(b"?")
        path = remove_dot_segments(raw_path)
        if path is None or (path is not raw_path and not self._keeps_prefix(raw_path, path)):
            refusal = Refusal(400, "the path climbs out of its root with dot-segments")
            self.refuse(app, request, refusal)
            return
        if request.method == b"GET" and path in _LOCAL:
            self._local(app, path, request.keep_alive)
            return

        lines = [b""]  # the request line goes first, once the route is known
        anthropic_hint = False
        shadow_traffic = False
        named = request.connection_tokens
        for name, value in request.headers:
            lower = name.lower()
            if lower in _NOT_FORWARDED or lower.startswith(_SEGMENT_PREFIX) or lower in named:
                shadow_traffic = shadow_traffic or lower == _SHADOW
                continue
            anthropic_hint = anthropic_hint or lower == _ANTHROPIC_VERSION
            lines.append(b"%s: %s\r\n" % (name, value))

        upstream, upstream_path = self._route(path, anthropic_hint)
        if upstream is None:
            self.bad_gateway(
                app, ProviderKind.OPENAI, "no upstream provider configured", request.keep_alive
            )
            return
        body = request.body
        lines[0] = b"%s %s%s%s%s HTTP/%s\r\nHost: %s\r\n" % (
            request.method,
            upstream.base_path,
            upstream_path,
            b"?" if query or target.endswith(b"?") else b"",
            query,
            request.version.encode(),
            upstream.host,
        )
        if body or request.method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        head = b"".join(lines)

        method = request.method.decode("latin-1")
        api = api_for(method, upstream_path.decode("latin-1"))
        rollout = self.rollout
        if (
            rollout is not None
            and api in SERVED_APIS
            and not shadow_traffic
            and request.version == "1.1"
            and rollout.live
        ):
            assert api is not None
            if self._serve_candidate(rollout, app, request, upstream, api, head):
                return
        self._forward(app, request, upstream, api, head, shadow_traffic)

    def _serve_candidate(
        self,
        rollout: RolloutRouter,
        app: AppConnection,
        request: Request,
        upstream: Upstream,
        api: Api,
        head: bytes,
    ) -> bool:
        """Hand the call to its candidate arm if the rollout chooses one; False: forward it."""
        try:
            choice = rollout.choose(api, lower_headers(request.headers), request.body)
        except Exception:  # noqa: BLE001 - a bug of ours: the primary serves the call
            log.exception("the rollout decision failed; the primary serves the call")
            return False
        if choice is None:
            return False

        def primary() -> None:
            self._forward(app, request, upstream, api, head, shadow_traffic=False)

        try:
            self.candidates.serve(app, request, choice, api, upstream.name, primary)
        except Exception:  # noqa: BLE001 - a bug of ours: the primary serves the call
            log.exception("serving a rollout call failed to start; the primary serves it")
            app.upstream = None
            return False
        return True

    def _forward(
        self,
        app: AppConnection,
        request: Request,
        upstream: Upstream,
        api: Api | None,
        head: bytes,
        shadow_traffic: bool,
    ) -> None:
        """Send the request upstream on the byte pipe; the answer streams back to `app`."""
        exchange: Exchange | None = None
        if api is not None and self.publisher is not None and not shadow_traffic:
            try:
                exchange = new_exchange(api, upstream.name, request.headers, request.body)
            except Exception:  # noqa: BLE001 - capture may fail; the call may not
                self.capture_failed()
        forward = Forward(
            self,
            app,
            upstream,
            api.value if api is not None else "other",
            exchange,
            request.keep_alive,
        )
        connection = self.pool.take(upstream.origin)
        if connection is not None:
            connection.send(
                app,
                forward,
                head,
                request.body,
                head_only=request.method == b"HEAD",
                app_version=request.version,
            )
            return
        task = asyncio.get_running_loop().create_task(
            self._connect_and_send(app, forward, request, head)
        )
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(
        self, app: AppConnection, forward: Forward, request: Request, head: bytes
    ) -> None:
        upstream = forward.upstream
        try:
            connection = await self.pool.acquire(upstream.origin)
        except (OSError, TimeoutError) as exc:
            self.metrics.upstream_errors.labels(upstream.name).inc()
            if app.closed:
                forward.app_left()
            else:
                forward.unreachable(type(exc).__name__)
            return
        if app.closed:
            self.pool.release(connection, keep_alive=True)  # unused, still good
            forward.app_left()
            return
        connection.send(
            app,
            forward,
            head,
            request.body,
            head_only=request.method == b"HEAD",
            app_version=request.version,
        )

    def refuse(self, app: AppConnection, request: Request, refusal: Refusal) -> None:
        """Answer a request the sidecar will not forward (`wire.Refusal`), in the error shape
        of the provider it was meant for, and close the connection."""
        body = error_body(self._kind_for(request), f"shadowjudge sidecar: {refusal.message}")
        self.metrics.refused.labels(str(refusal.status)).inc()
        reason = REASONS.get(refusal.status, b"Bad Request")
        app.linger = True
        _answer(app, refusal.status, reason, b"application/json", body, keep_alive=False)

    def _keeps_prefix(self, raw_path: bytes, path: bytes) -> bool:
        """A path that named a provider (`/<provider>/...`) still does once normalised."""
        first, _, rest = raw_path[1:].partition(b"/")
        if not first or first.decode("latin-1") not in self._upstreams:
            return True
        return path.startswith(b"/" + first + b"/")

    def _kind_for(self, request: Request) -> ProviderKind:
        """The provider kind a request was meant for, as far as it was read."""
        path = request.target.partition(b"?")[0]
        first = path[1:].partition(b"/")[0].decode("latin-1")
        named = self._upstreams.get(first)
        if named is not None:
            return named.kind
        anthropic = path.startswith(b"/v1/messages") or any(
            name.lower() == _ANTHROPIC_VERSION for name, _ in request.headers
        )
        return ProviderKind.ANTHROPIC if anthropic else ProviderKind.OPENAI

    def capture_failed(self) -> None:
        """A capture step raised on the live path: log it, count it, let the call go on."""
        log.exception("capture failed on the live path; the call goes on uncaptured")
        self.metrics.dropped.labels(DROP_CAPTURE_ERROR).inc()

    def _route(self, path: bytes, anthropic_hint: bool) -> tuple[Upstream | None, bytes]:
        first, _, rest = path[1:].partition(b"/")
        if rest and first:
            named = self._upstreams.get(first.decode("latin-1"))
            if named is not None:
                return named, path[len(first) + 1 :]
        if path.startswith(b"/v1/messages") or anthropic_hint:
            kind = ProviderKind.ANTHROPIC
        else:
            kind = ProviderKind.OPENAI
        name = self._defaults.get(kind)
        return (self._upstreams[name] if name in self._upstreams else None), path

    # --- the sidecar's own answers -----------------------------------------------------------

    def bad_gateway(
        self, app: AppConnection, kind: ProviderKind, message: str, keep_alive: bool
    ) -> None:
        body = error_body(kind, message)
        _answer(app, 502, b"Bad Gateway", b"application/json", body, keep_alive)

    def _local(self, app: AppConnection, path: bytes, keep_alive: bool) -> None:
        if path == b"/metrics":
            body = self.metrics.render()
            content_type = CONTENT_TYPE.encode()
        else:
            publisher = self.publisher
            # Always 200: the live path answers even when a role behind it is degraded (a
            # full store must not take the app's traffic out of rotation); the body says so.
            roles = {name: _role_health(check) for name, check in self.metrics.health.items()}
            degraded = any(state.get("status") == "degraded" for state in roles.values())
            body = orjson.dumps(
                {
                    "status": "degraded" if degraded else "ok",
                    "capture": publisher is not None,
                    "bus_connected": publisher.connected if publisher else None,
                    "queue_depth": publisher.depth if publisher else 0,
                    **({"roles": roles} if roles else {}),
                }
            )
            content_type = b"application/json"
        _answer(app, 200, b"OK", content_type, body, keep_alive)

    # --- metrics -----------------------------------------------------------------------------

    def observe(self, api: str, status: int, started: float) -> None:
        status_class = f"{status // 100}xx" if status else "none"
        key = (api, status_class)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.metrics.requests.labels(*key)
        counter.inc()
        histogram = self._latency.get(api)
        if histogram is None:
            histogram = self._latency[api] = self.metrics.upstream_latency.labels(api)
        histogram.observe(time.perf_counter() - started)


def _answer(
    app: AppConnection,
    status: int,
    reason: bytes,
    content_type: bytes,
    body: bytes,
    keep_alive: bool,
) -> None:
    """One of the sidecar's own answers, whole, ending the request."""
    app.write(simple_response(status, reason, content_type, body))
    app.done(keep_alive)


def _role_health(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a health probe must answer, whatever a role does
        return {"status": "unknown", "error": f"{type(exc).__name__}: {exc}"}
