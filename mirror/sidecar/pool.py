"""The upstream connection pool: keep-alive connections to the providers per origin, and a
bound on those in use (`sidecar.max_connections`). The connections themselves, and what they
forward, are `mirror.sidecar.upstream`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque

from mirror.sidecar.upstream import Origin, UpstreamConnection


class UpstreamPool:
    """Keep-alive connections per origin, most recently used first; a bound on those in use."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_s: float,
        connect_timeout_s: float,
        read_timeout_s: float | None,
    ) -> None:
        self._max = max_connections
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: dict[Origin, list[UpstreamConnection]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tls = ssl.create_default_context()

    def take(self, origin: Origin) -> UpstreamConnection | None:
        """An idle connection to `origin`, now in use, or None (then await `acquire`)."""
        idle = self._idle.get(origin)
        if not idle or self._in_use >= self._max:
            return None
        expired = time.monotonic() - self._keepalive_s
        while idle:
            connection = idle.pop()
            transport = connection.transport
            closing = transport is None or transport.is_closing()
            if connection.closed or closing or connection.idle_since < expired:
                connection.close()
                continue
            self._in_use += 1
            return connection
        return None

    async def acquire(self, origin: Origin) -> UpstreamConnection:
        """A connection to `origin`, in use: an idle one if one frees up while waiting for the
        bound, else a new one. OSError or TimeoutError when none can be had."""
        while self._in_use >= self._max:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            if (connection := self.take(origin)) is not None:
                return connection
        self._in_use += 1
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self._connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: UpstreamConnection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=self._tls if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
        except BaseException:
            self._returned()
            raise
        return protocol

    def release(self, connection: UpstreamConnection, keep_alive: bool) -> None:
        self._returned()
        if keep_alive and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    def lost(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _returned(self) -> None:
        self._in_use -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
