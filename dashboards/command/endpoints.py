"""A role's own operations endpoint when it runs alone: `GET /metrics` and `GET /healthz`.

In the one-process `run`, the sidecar serves every role's metrics and health on its own port;
a runner or a judge started alone serves them on its `metrics_listen` address. This is
prometheus_client's WSGI metrics app behind a small dispatcher, served by the standard
library's WSGI server in a daemon thread (as `prometheus_client.start_http_server` does), so
a busy event loop never delays a scrape. `/healthz` answers 200 with the role's state in JSON
(`ok`, or `degraded` with the reason): a degraded judge is still alive, and restarting it
would not fix a full disk.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from mirror.config import parse_host_port

Health = Callable[[], dict[str, Any]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Scrapes are not worth a log line each."""


def role_app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            body = json.dumps(health()).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    return app


def serve_role_endpoints(
    listen: str | None, registry: CollectorRegistry, health: Health, key: str
) -> WSGIServer | None:
    """Serve /metrics and /healthz on `listen` (None: not at all) in a daemon thread."""
    if not listen:
        return None
    host, port = parse_host_port(listen, key)
    server = make_server(host, port, role_app(registry, health), _Server, _QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"{key}-endpoint", daemon=True).start()
    return server
