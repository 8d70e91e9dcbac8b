"""The sidecar's own answers, never forwarded: its local endpoints (`/metrics`, `/healthz`),
and the error bodies of its refusals and 502s in the provider's own shape (`error_body`), each
a whole response of known length (`simple_response`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from mirror.events import ProviderKind
from mirror.sidecar.metrics import CONTENT_TYPE, SidecarMetrics
from mirror.sidecar.publisher import Publisher
from mirror.sidecar.wire import AppConnection

#: The paths the sidecar answers itself (to a GET), never forwarded.
LOCAL_PATHS = {b"/metrics", b"/healthz"}


def error_body(kind: ProviderKind, message: str) -> bytes:
    """An error body in the provider's own shape, so the app's SDK parses it as usual."""
    if kind is ProviderKind.ANTHROPIC:
        return orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return orjson.dumps(
        {"error": {"message": message, "type": "api_error", "param": None, "code": None}}
    )


def answer_local(
    app: AppConnection,
    path: bytes,
    keep_alive: bool,
    metrics: SidecarMetrics,
    publisher: Publisher | None,
) -> None:
    """Answer a GET of one of `LOCAL_PATHS`."""
    if path == b"/metrics":
        body = metrics.render()
        content_type = CONTENT_TYPE.encode()
    else:
        # Always 200: the live path answers even when a role behind it is degraded (a
        # full store must not take the app's traffic out of rotation); the body says so.
        roles = {name: _role_health(check) for name, check in metrics.health.items()}
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
    answer(app, 200, b"OK", content_type, body, keep_alive)


def simple_response(status: int, reason: bytes, content_type: bytes, body: bytes) -> bytes:
    """A whole response with a body of known length (the sidecar's own answers)."""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
            % (status, reason, content_type, len(body)),
            body,
        )
    )


def answer(
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
