"""The sidecar in a process of its own, started and supervised by `shadowjudge run`.

In one interpreter the judge's CPU work stalled the live path, on a shared event loop and,
measured, on a thread and loop of its own too (most likely the interpreter lock, held for tens
of milliseconds at a time by the other roles' C calls). So `run` starts the sidecar as a child
process that shares nothing with the other roles but a Unix socket (`mirror.sidecar.channel`):

- the parent binds the sidecar's port (a taken port fails the start at once) and hands the
  socket to the child, with the mirror's settings sections (pickled on the child's stdin);
- the child publishes its captures over the channel; the parent puts them on its in-process
  bus (with Kafka, the child opens its own producer and nothing crosses);
- the parent sends every rollout weight change (polled every `POLL_S`) and, every
  `RELAY_EVERY_S`, the other roles' metrics and health, so the sidecar's /metrics and /healthz
  show every role as before (at most that much out of date);
- on the stop signal the parent sends SIGTERM to the child, which stops taking calls, finishes
  its own, publishes what it captured and exits; the parent reads the channel to its end, so
  every capture is on the bus before the drain counts. The parent keeps the port bound: a
  child that exits by itself after `RESTART_AFTER_S` is started again (the calls it had in
  flight are cut, the app's new connections wait in the backlog); one that exits sooner failed
  to start, and fails the run. A parent that dies closes the channel, and the child stops.
- the child asks the kernel for a short CPU slice (`sidecar.cpu_slice_us`,
  `mirror.sidecar.sched`), so that when it wakes on a core the judge keeps busy it gets the
  core at once instead of after the judge's slice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import generate_latest

from mirror.bus.base import Bus
from mirror.config import BusSettings, CaptureSettings, ProviderSettings, SidecarSettings
from mirror.errors import MirrorError
from mirror.migrations import MigrationSettings
from mirror.rollout import WeightChange, Weights
from mirror.sidecar.channel import (
    CAPTURE,
    RELAY,
    WEIGHT,
    ChannelBus,
    decode_record,
    frame,
    read_frame,
)
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.sched import request_slice
from mirror.sidecar.server import SidecarServer, build_sidecar

log = logging.getLogger(__name__)

#: How often the parent looks at the stop flag, the child and the weights.
POLL_S = 0.05
#: How often the parent sends the other roles' metrics and health to the child.
RELAY_EVERY_S = 1.0
#: A child that exits by itself after serving this long is started again; sooner, it failed
#: to start (its settings, its imports) and the run fails with it.
RESTART_AFTER_S = 5.0


class SidecarProcessError(MirrorError):
    """The sidecar's process exited while the run was serving."""


@dataclass(frozen=True)
class ChildConfig:
    """What the child needs, pickled on its stdin (the settings are validated already)."""

    sidecar: SidecarSettings
    providers: Mapping[str, ProviderSettings]
    capture: CaptureSettings
    bus: BusSettings
    migrations: Sequence[MigrationSettings]
    #: The parent's roles whose health the child serves on /healthz (relayed).
    roles: Sequence[str]
    #: Publish through the parent's in-process bus (else the child opens the configured bus).
    through_parent: bool
    log_level: int = logging.INFO


class SidecarProcess:
    """The parent's side: `serve()` starts the child and returns when it has stopped (after
    `should_exit`, set from any thread) and every capture it sent is on `bus`."""

    def __init__(
        self,
        config: ChildConfig,
        listener: socket.socket,
        *,
        bus: Bus | None,
        weights: Weights,
        metrics: SidecarMetrics,
    ) -> None:
        self.config = config
        self.listener = listener
        self.bus = bus
        self.weights = weights
        self.metrics = metrics
        self.should_exit = False
        self.pid: int | None = None
        # The child is started from this thread, never from the loop's: the parent's other
        # threads may be moved to the idle CPU policy, which a child would inherit for good.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="shadowjudge-sidecar-spawn")

    async def spawner_thread(self) -> int:
        """The native id of the thread that starts the child (started now if need be)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._spawner, threading.get_native_id)

    async def serve(self) -> None:
        try:
            while True:
                started = time.monotonic()
                if await self._serve_once():
                    return
                if time.monotonic() - started < RESTART_AFTER_S:
                    raise SidecarProcessError(
                        "the sidecar process exited while starting; its log says why"
                    )
                # The port stayed bound here: the app's connections wait in its backlog
                # for the next child instead of being refused. Calls in flight were cut.
                log.error("the sidecar process exited while serving; starting it again")
        finally:
            self.listener.close()
            self._spawner.shutdown(wait=False)

    async def _serve_once(self) -> bool:
        """Run one child until it exits: True when it was asked to (the stop signal)."""
        ours, theirs = socket.socketpair()
        spawn = asyncio.get_running_loop().run_in_executor(self._spawner, self._start_child, theirs)
        try:
            process = await asyncio.shield(spawn)
        except BaseException:
            spawn.add_done_callback(_stop_unwanted)  # started for nobody: stopped
            ours.close()
            raise
        self.pid = process.pid
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a child that died is seen below
            process.stdin.write(pickle.dumps(self.config))
            process.stdin.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        reading = asyncio.ensure_future(self._read(reader))
        signalled = False
        try:
            sent_version, relayed_at = -1, 0.0
            while process.poll() is None and not reading.done():
                if self.should_exit and not signalled:
                    process.send_signal(signal.SIGTERM)
                    signalled = True
                if self.weights.version != sent_version:
                    sent_version = self.weights.version
                    for change in self.weights.all():
                        writer.write(frame(WEIGHT, change.encode()))
                if time.monotonic() - relayed_at >= RELAY_EVERY_S:
                    relayed_at = time.monotonic()
                    writer.write(frame(RELAY, self._relay()))
                await asyncio.sleep(POLL_S)
            await reading  # to the channel's end: every capture is on the bus
            while process.poll() is None:  # noqa: ASYNC110 - a child process, polled
                await asyncio.sleep(POLL_S)
        except BaseException:
            process.kill()
            reading.cancel()
            raise
        finally:
            writer.close()
        if signalled and process.returncode == -signal.SIGTERM:
            # Our SIGTERM arrived before the child set its handler, which it does before it
            # serves: stopped while starting, with no call taken.
            log.info("the sidecar process was stopped while it started")
        elif signalled and process.returncode != 0:
            log.warning("the sidecar process exited with status %d", process.returncode)
        elif not signalled:
            log.error("the sidecar process exited with status %d", process.returncode)
        return signalled

    def _start_child(self, theirs: socket.socket) -> subprocess.Popen[bytes]:
        """In the spawner thread: start the child with its end of the channel, then close that
        end here (not in the loop's thread, which could close it while the fork uses it)."""
        try:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mirror.sidecar.child",
                    str(self.listener.fileno()),
                    str(theirs.fileno()),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(self.listener.fileno(), theirs.fileno()),
                start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
            )
        finally:
            theirs.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while (got := await read_frame(reader)) is not None:
                kind, payload = got
                if kind != CAPTURE or self.bus is None:
                    continue
                topic, key, value = decode_record(payload)
                delivery = await self.bus.send(topic, value, key=key)
                await delivery
        except ConnectionError:
            return  # the child is gone; its exit status says how

    def _relay(self) -> bytes:
        health: dict[str, Any] = {}
        for name, check in self.metrics.health.items():
            try:
                health[name] = check()
            except Exception as exc:  # noqa: BLE001 - a role's bug is its health, not ours
                health[name] = {"status": "degraded", "reason": f"health check failed: {exc}"}
        text = b"".join(generate_latest(r) for r in self.metrics.also)
        return orjson.dumps({"metrics": text.decode(), "health": health}, default=str)


# --- the child ---------------------------------------------------------------------------------


def _stop_unwanted(spawn: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if not spawn.cancelled() and spawn.exception() is None:
        spawn.result().kill()


def _relayed(states: dict[str, dict[str, Any]], name: str) -> Callable[[], dict[str, Any]]:
    return lambda: states.get(name, {"status": "starting"})


async def _serve_child(config: ChildConfig, listen_fd: int, channel_fd: int) -> None:
    listener = socket.socket(fileno=listen_fd)
    listener.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=channel_fd))
    weights = Weights()
    metrics = SidecarMetrics()
    states: dict[str, dict[str, Any]] = {}
    for name in config.roles:
        metrics.health[name] = _relayed(states, name)
    bus = (
        ChannelBus(writer, max_buffer_bytes=config.capture.queue_max_bytes)
        if config.through_parent
        else None
    )
    sidecar = build_sidecar(
        config.sidecar,
        config.providers,
        config.capture,
        config.bus,
        bus=bus,
        metrics=metrics,
        migrations=config.migrations,
        weights=weights,
    )
    server = SidecarServer(sidecar, config.sidecar.listen, sock=listener)

    def stop() -> None:
        server.should_exit = True

    async def from_parent() -> None:
        try:
            while (got := await read_frame(reader)) is not None:
                kind, payload = got
                if kind == WEIGHT:
                    weights.apply(WeightChange.decode(payload))
                elif kind == RELAY:
                    relay = orjson.loads(payload)
                    metrics.relayed = relay["metrics"].encode()
                    states.update(relay["health"])
        except Exception:  # noqa: BLE001 - a broken channel stops the sidecar, said once
            log.exception("the channel from the parent process broke")
        stop()  # the parent is gone: stop taking calls

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    listening = asyncio.ensure_future(from_parent())
    try:
        await server.serve()
    finally:
        listening.cancel()
        with contextlib.suppress(OSError):  # every capture handed over before we exit
            await writer.drain()
            writer.close()
            await writer.wait_closed()


def main() -> None:
    listen_fd, channel_fd = int(sys.argv[1]), int(sys.argv[2])
    config: ChildConfig = pickle.loads(sys.stdin.buffer.read())
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent says when to stop
    gc.collect()  # as every role (see dashboards' tune_gc): cycles collected rarely
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    if config.sidecar.cpu_slice_us:
        request_slice(config.sidecar.cpu_slice_us)
    import uvloop

    uvloop.run(_serve_child(config, listen_fd, channel_fd))


if __name__ == "__main__":
    main()
