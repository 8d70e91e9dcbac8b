"""Serving the sidecar: the uvicorn server and the assembly of sidecar, publisher and bus.

The process's supervisor (the CLI) owns signals, so one process can run several servers and
workers and stop them in order; uvicorn's own signal capture is turned off for that reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping
from typing import Any

import uvicorn

from mirror.bus import Bus, open_bus
from mirror.config import (
    BusSettings,
    CaptureSettings,
    ProviderSettings,
    SidecarSettings,
    parse_host_port,
)
from mirror.metrics import SidecarMetrics
from mirror.proxy import Sidecar
from mirror.publisher import Publisher

KEEP_ALIVE_S = 75


class SupervisedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process supervisor."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def make_server(app: Any, listen: str, *, graceful_timeout_s: float = 30.0) -> SupervisedServer:
    host, port = parse_host_port(listen, "listen")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="none",  # the supervisor's loop (uvloop) is already running
        http="httptools",
        lifespan="on",
        proxy_headers=False,  # the sidecar forwards headers; it does not interpret them
        access_log=False,
        server_header=False,
        date_header=False,
        log_level="warning",
        timeout_graceful_shutdown=int(graceful_timeout_s),
        # Longer than the idle expiry of the apps' connection pools (httpx: 5 s, the same as
        # uvicorn's default, which races: the app reuses a connection the server is closing
        # and sees an error it would not see from the provider, who keeps connections long).
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return SupervisedServer(config)


def build_sidecar(
    sidecar: SidecarSettings,
    providers: Mapping[str, ProviderSettings],
    capture: CaptureSettings,
    bus_settings: BusSettings,
    *,
    bus: Bus | None = None,
    metrics: SidecarMetrics | None = None,
) -> Sidecar:
    """The sidecar app. Without `bus`, it opens and owns the bus the settings name."""
    metrics = metrics or SidecarMetrics()
    publisher = None
    if capture.enabled:
        own = bus is None
        publisher = Publisher(
            bus if bus is not None else open_bus(bus_settings, client_id="shadowjudge-sidecar"),
            bus_settings.topics.calls,
            capture,
            metrics,
            own_bus=own,
        )
    return Sidecar(sidecar, providers, publisher, metrics)
