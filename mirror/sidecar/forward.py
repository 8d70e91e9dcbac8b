"""One request forwarded on the byte pipe (`Forward`): what the upstream connection reports of
its answer, and the call's bookkeeping (metrics, capture) when the answer ends.

Unreachable upstream: a 502 in that provider's own error shape; a kept-alive connection found
closed before any byte of the answer gets the request once more on a fresh connection
(`mirror.sidecar.upstream`), from the references `Forward` holds. When the app goes away, the
upstream connection is closed at once. An upstream that breaks mid-answer has the app's
connection cut the same way.

Capture costs the live path a list append per body chunk and one `Publisher.submit` at the end;
all parsing happens later in the publisher's task. Any failure in that bookkeeping drops the
capture (counted), never the call.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from mirror.events import ErrorInfo, ErrorKind, ProviderKind
from mirror.sidecar.capture import Exchange
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.publisher import Publisher
from mirror.sidecar.request import Request
from mirror.sidecar.routes import Upstream
from mirror.sidecar.wire import AppConnection

log = logging.getLogger(__name__)

_CLIENT_LEFT = ErrorInfo(kind=ErrorKind.CLIENT_DISCONNECT, message="the app closed the connection")


class Proxy(Protocol):
    """What a `Forward` reports to: the `Sidecar` (`mirror.sidecar.proxy`)."""

    metrics: SidecarMetrics
    publisher: Publisher | None
    max_body_bytes: int

    def capture_failed(self) -> None: ...

    def observe(self, api: str, status: int, started: float) -> None: ...

    def bad_gateway(
        self, app: AppConnection, kind: ProviderKind, message: str, keep_alive: bool
    ) -> None: ...

    def send_fresh(self, forward: Forward) -> None: ...


class Forward:
    """One request on its way: reports from the upstream connection, the answer's bookkeeping."""

    __slots__ = (
        "api",
        "app",
        "exchange",
        "head",
        "keep_alive",
        "request",
        "resent",
        "sidecar",
        "started",
        "status",
        "upstream",
    )

    def __init__(
        self,
        sidecar: Proxy,
        app: AppConnection,
        upstream: Upstream,
        api: str,
        exchange: Exchange | None,
        request: Request,
        head: bytes,
    ) -> None:
        self.sidecar = sidecar
        self.app = app
        self.upstream = upstream
        self.api = api
        self.exchange = exchange
        #: The request and the head sent for it (references, not copies): kept to send it
        #: once more if a kept-alive connection turns out closed (`response_failed(stale)`).
        self.request = request
        self.head = head
        self.keep_alive = request.keep_alive
        self.resent = False
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

    def response_done(self, keep_alive: bool, ended: float) -> None:
        self.end(None, ended)
        self.app.done(self.keep_alive and keep_alive)

    def response_failed(self, reason: str, answered: bool, *, stale: bool = False) -> None:
        if stale and not self.resent and not self.app.closed:
            self.resent = True
            self.sidecar.metrics.stale_retries.labels(self.upstream.name).inc()
            log.debug(
                "upstream %s: a kept-alive connection closed unanswered; sending again",
                self.upstream.name,
            )
            self.sidecar.send_fresh(self)
            return
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

    def end(self, error: ErrorInfo | None, ended: float | None = None) -> None:
        """The call is over: counted, and its capture queued. `ended`: when its answer's last
        bytes arrived (the latency excludes the sidecar's own work after); else now."""
        sidecar = self.sidecar
        sidecar.observe(self.api, self.status, self.started)
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        exchange.ended = time.perf_counter() if ended is None else ended
        exchange.error = error
        if sidecar.publisher is not None:
            sidecar.publisher.submit(exchange)
