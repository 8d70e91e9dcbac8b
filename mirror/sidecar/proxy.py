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
meets before it gets here are in `request` (enforced by `wire`); a path that would climb out of
the provider's base path or out of its `/<provider>/` prefix is refused here with 400. Every
refusal is in the provider's own error shape (`error_body`), and closes the connection.

Routing (`mirror.sidecar.routes`): `/<provider>/v1/...` goes to that configured provider; any
other path goes to the default provider of its dialect. Each forwarded request is a `Forward`
(`mirror.sidecar.forward`: unreachable upstreams, an app that goes away, capture); the
sidecar's own answers (refusals, 502s, `/metrics`, `/healthz`) are `mirror.sidecar.local`.
Protocol upgrades (WebSocket) are not proxied: the provider APIs it mirrors do not use them over
HTTP/1.1.

Staged rollout: when a migration declares `rollout:` and serves a weight above 0, a call the
`RolloutRouter` chooses is answered by the candidate arm instead (`mirror.sidecar.served`,
which falls back to this byte pipe, unchanged, whenever the candidate cannot serve). Without a
live weight a call pays one attribute check (no rollout configured) or a version comparison.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mirror.config import CaptureSettings, ProviderSettings, SidecarSettings
from mirror.events import SEGMENT_HEADER_PREFIX, SHADOW_TRAFFIC_HEADER, Api, ProviderKind
from mirror.migrations import MigrationSettings
from mirror.rollout import Weights
from mirror.sidecar.capture import Exchange, api_for, lower_headers, new_exchange
from mirror.sidecar.forward import Forward
from mirror.sidecar.local import LOCAL_PATHS, answer, answer_local, error_body
from mirror.sidecar.metrics import DROP_CAPTURE_ERROR, SidecarMetrics
from mirror.sidecar.pool import UpstreamPool
from mirror.sidecar.publisher import Publisher
from mirror.sidecar.request import REASONS, Limits, Refusal, Request
from mirror.sidecar.rollout import SERVED_APIS, RolloutRouter
from mirror.sidecar.routes import (
    ANTHROPIC_VERSION,
    Upstream,
    default_upstreams,
    keeps_prefix,
    kind_for,
    route,
)
from mirror.sidecar.served import CandidateServer
from mirror.sidecar.target import remove_dot_segments
from mirror.sidecar.wire import AppConnection

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
        if path is None or (
            path is not raw_path and not keeps_prefix(self._upstreams, raw_path, path)
        ):
            refusal = Refusal(400, "the path climbs out of its root with dot-segments")
            self.refuse(app, request, refusal)
            return
        if request.method == b"GET" and path in LOCAL_PATHS:
            answer_local(app, path, request.keep_alive, self.metrics, self.publisher)
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
            anthropic_hint = anthropic_hint or lower == ANTHROPIC_VERSION
            lines.append(b"%s: %s\r\n" % (name, value))

        upstream, upstream_path = route(self._upstreams, self._defaults, path, anthropic_hint)
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
            request,
            head,
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
        self.send_fresh(forward)

    def send_fresh(self, forward: Forward) -> None:
        """Send `forward`'s request on a new connection: none was idle, or the kept-alive one
        it went on was found closed (`Forward.response_failed`)."""
        task = asyncio.get_running_loop().create_task(self._connect_and_send(forward))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(self, forward: Forward) -> None:
        app, request, upstream = forward.app, forward.request, forward.upstream
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
            forward.head,
            request.body,
            head_only=request.method == b"HEAD",
            app_version=request.version,
        )

    def refuse(self, app: AppConnection, request: Request, refusal: Refusal) -> None:
        """Answer a request the sidecar will not forward (`request.Refusal`), in the error shape
        of the provider it was meant for, and close the connection."""
        body = error_body(
            kind_for(self._upstreams, request), f"shadowjudge sidecar: {refusal.message}"
        )
        self.metrics.refused.labels(str(refusal.status)).inc()
        reason = REASONS.get(refusal.status, b"Bad Request")
        app.linger = True
        answer(app, refusal.status, reason, b"application/json", body, keep_alive=False)

    def capture_failed(self) -> None:
        """A capture step raised on the live path: log it, count it, let the call go on."""
        log.exception("capture failed on the live path; the call goes on uncaptured")
        self.metrics.dropped.labels(DROP_CAPTURE_ERROR).inc()

    # --- the sidecar's own answers -----------------------------------------------------------

    def bad_gateway(
        self, app: AppConnection, kind: ProviderKind, message: str, keep_alive: bool
    ) -> None:
        body = error_body(kind, message)
        answer(app, 502, b"Bad Gateway", b"application/json", body, keep_alive)

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
