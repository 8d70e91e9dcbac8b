"""Serving the sidecar: its listening socket, graceful stop, and the assembly of sidecar,
publisher and bus.

The process's supervisor (the CLI) owns signals, so one process can run several servers and
workers and stop them in order: a server runs until its `should_exit` is set.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Mapping, Sequence

from mirror.bus.base import Bus
from mirror.bus.factory import open_bus
from mirror.config import (
    BusSettings,
    CaptureSettings,
    ProviderSettings,
    SidecarSettings,
    parse_host_port,
)
from mirror.errors import ConfigError
from mirror.migrations import MigrationSettings
from mirror.rollout import Weights
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.proxy import Sidecar
from mirror.sidecar.publisher import Publisher

log = logging.getLogger(__name__)

#: How often a running server looks at `should_exit`.
_POLL_S = 0.1


def bind(listen: str, key: str) -> socket.socket:
    """A listening socket on `listen`, bound now: a ConfigError that names `key` when it cannot
    be (a taken port), before anything starts, instead of a server that never comes up."""
    host, port = parse_host_port(listen, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(f"{key}: cannot listen on {listen}: {why}") from exc
    sock.setblocking(False)
    return sock


class SidecarServer:
    """Serves one `Sidecar` on `listen` until `should_exit`, then drains for a bounded time.
    The socket is bound when the server is made (see `bind`)."""

    def __init__(
        self,
        sidecar: Sidecar,
        listen: str,
        *,
        graceful_timeout_s: float = 30.0,
        key: str = "sidecar.listen",
        sock: socket.socket | None = None,
    ) -> None:
        self.sidecar = sidecar
        self.host, self.port = parse_host_port(listen, key)
        self.socket = sock if sock is not None else bind(listen, key)
        self.graceful_timeout_s = graceful_timeout_s
        self.should_exit = False

    async def serve(self) -> None:
        sidecar = self.sidecar
        await sidecar.startup()
        try:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(sidecar.connection, sock=self.socket)
        except BaseException:
            await sidecar.shutdown()
            raise
        try:
            # A flag, not an Event: it is set from signal handlers and from other threads.
            while not self.should_exit:  # noqa: ASYNC110
                await asyncio.sleep(_POLL_S)
        finally:
            server.close()
            await self._drain()
            await sidecar.shutdown()

    async def _drain(self) -> None:
        """Let answers in flight finish (up to the graceful timeout); close idle connections."""
        deadline = time.monotonic() + self.graceful_timeout_s
        connections = self.sidecar.connections
        while True:
            for connection in list(connections):
                connection.close_if_idle()
            if not any(c.busy for c in connections) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL_S / 2)
        for connection in list(connections):
            if connection.busy:
                log.warning("sidecar stopping: cutting a call still in flight")
            connection.cut()


def build_sidecar(
    sidecar: SidecarSettings,
    providers: Mapping[str, ProviderSettings],
    capture: CaptureSettings,
    bus_settings: BusSettings,
    *,
    bus: Bus | None = None,
    metrics: SidecarMetrics | None = None,
    migrations: Sequence[MigrationSettings] = (),
    weights: Weights | None = None,
) -> Sidecar:
    """The sidecar app. Without `bus`, it opens and owns the bus the settings name.

    `migrations` that declare `rollout:` are served at the weights `weights` holds: apply a
    `WeightChange` to it (any thread) and the next call sees it. Without `weights` the
    sidecar makes its own table (then `sidecar.weights`), with no change recorded: each
    rollout serves its configured `rollout.weight`.
    """
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
    return Sidecar(
        sidecar,
        providers,
        publisher,
        metrics,
        migrations=migrations,
        weights=weights,
        capture=capture,
    )
