"""A real sidecar (its server, the publisher) on a loopback port, on its own thread.

The SDK clients under test run on the test's thread, as an app would; the sidecar's event loop
runs beside them. With a memory bus, `calls()` reads what was published.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import uvloop

from mirror.bus.base import Bus
from mirror.bus.memory import MemoryBus
from mirror.config import (
    BusSettings,
    CaptureSettings,
    ProviderSettings,
    SidecarSettings,
)
from mirror.events import CapturedCall, ProviderKind, parse_captured_call
from mirror.migrations import MigrationSettings
from mirror.rollout import Weights
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.server import SidecarServer, build_sidecar
from tests.broker import free_port, wait_for_port


def providers_for(openai_url: str, anthropic_url: str) -> dict[str, ProviderSettings]:
    return {
        "openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=openai_url),
        "anthropic": ProviderSettings(kind=ProviderKind.ANTHROPIC, base_url=anthropic_url),
    }


class RunningSidecar:
    def __init__(
        self,
        url: str,
        loop: asyncio.AbstractEventLoop,
        bus: Bus | None,
        metrics: SidecarMetrics,
        topic: str,
    ) -> None:
        self.url = url
        self.loop = loop
        self.bus = bus
        self.metrics = metrics
        self.topic = topic

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels or None) or 0.0

    def calls(self, expected: int | None = None, timeout_s: float = 10.0) -> list[CapturedCall]:
        """The calls published so far (waiting until `expected` arrived, if given). A call the
        app has its answer to is published: its capture was queued before the answer's last
        bytes were read, so this first waits for the publisher's queue to be empty (a capture
        waits there `capture.publish_delay_ms`)."""
        assert isinstance(self.bus, MemoryBus)
        bus = self.bus
        deadline = time.monotonic() + timeout_s
        while self.metric("shadowjudge_sidecar_queue_depth") and time.monotonic() < deadline:
            time.sleep(0.005)
        while True:
            records = asyncio.run_coroutine_threadsafe(
                _snapshot(bus, self.topic), self.loop
            ).result()
            if expected is None or len(records) >= expected or time.monotonic() > deadline:
                return [parse_captured_call(r) for r in records]
            time.sleep(0.01)

    def raw_records(self) -> list[bytes]:
        assert isinstance(self.bus, MemoryBus)
        return asyncio.run_coroutine_threadsafe(_snapshot(self.bus, self.topic), self.loop).result()


async def _snapshot(bus: MemoryBus, topic: str) -> list[bytes]:
    return [r.value for r in bus.topic(topic).log]


@contextmanager
def run_sidecar(
    providers: Mapping[str, ProviderSettings],
    *,
    capture: CaptureSettings | None = None,
    bus_settings: BusSettings | None = None,
    memory_bus: bool = True,
    sidecar: SidecarSettings | None = None,
    migrations: Sequence[MigrationSettings] = (),
    weights: Weights | None = None,
) -> Iterator[RunningSidecar]:
    port = free_port()
    # Idle upstream connections expire before the fakes' (uvicorn: 5 s), as the settings tell
    # operators to do with their provider: else a call can meet a connection being closed.
    settings = (sidecar or SidecarSettings(upstream_keepalive_s=2)).model_copy(
        update={"listen": f"127.0.0.1:{port}"}
    )
    bus_settings = bus_settings or BusSettings()
    loop = uvloop.new_event_loop()  # the loop the CLI runs the sidecar on
    bus: Bus | None = MemoryBus() if memory_bus else None
    metrics = SidecarMetrics()
    app = build_sidecar(
        settings,
        providers,
        capture or CaptureSettings(),
        bus_settings,
        bus=bus,
        metrics=metrics,
        migrations=migrations,
        weights=weights,
    )
    server = SidecarServer(app, settings.listen, graceful_timeout_s=2)
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield RunningSidecar(
            f"http://127.0.0.1:{port}", loop, bus, metrics, bus_settings.topics.calls
        )
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()


def sdk_kwargs(url: str) -> dict[str, Any]:
    return {"base_url": url, "max_retries": 0}
