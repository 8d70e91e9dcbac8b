"""Staged rollout on the live path, the serving: a call answered by a candidate arm, or by the
primary when the candidate cannot.

`mirror.sidecar.rollout` chose the call; `mirror.sidecar.candidate` writes the candidate's
request and the head of its answer; `mirror.sidecar.served_call` runs each call (`ServedCall`:
the answer, the fallback rule, capture). This module holds what the calls share:
`CandidateServer`, which starts each call in a task, owns their HTTP client and counts
fallbacks.

Why a client here and not the byte pipe: the served path must read the answer (to translate
it, to decide a fallback) before the app sees any of it, so zero-copy forwarding buys nothing.
One aiohttp session per sidecar, made at the first served call and closed at shutdown; calls
that are not served never touch it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from mirror.events import Api
from mirror.sidecar.capture import Exchange
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.request import Request
from mirror.sidecar.rollout import Choice
from mirror.sidecar.served_call import ServedCall
from mirror.sidecar.wire import AppConnection


class CandidateServer:
    """Serves the calls the rollout router chose, each in a task (see the module docs)."""

    def __init__(
        self,
        metrics: SidecarMetrics,
        *,
        first_byte_timeout_s: float,
        read_timeout_s: float | None,
        max_connections: int,
        max_body_bytes: int,
        submit: Callable[[Exchange], None] | None,
        observe: Callable[[str, int, float], None],
    ) -> None:
        self.metrics = metrics
        self.first_byte_timeout_s = first_byte_timeout_s
        self.max_body_bytes = max_body_bytes
        self.submit = submit
        self.observe = observe
        self._read_timeout_s = read_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                cookie_jar=aiohttp.DummyCookieJar(),
                # The first-byte deadline is ours; after it, the sidecar's read timeout (none
                # by default: the app's own client decides how long it waits).
                timeout=aiohttp.ClientTimeout(total=None, sock_read=self._read_timeout_s),
                auto_decompress=True,
            )
        return self._session

    def serve(
        self,
        app: AppConnection,
        request: Request,
        choice: Choice,
        api: Api,
        primary_provider: str,
        primary: Callable[[], None],
    ) -> None:
        """Answer `request` from `choice`'s arm; `primary()` forwards it to the primary."""
        call = ServedCall(self, app, request, choice, api, primary_provider, primary)
        task = asyncio.get_running_loop().create_task(call.run())
        call.task = task
        app.upstream = call
        if app.writing_paused:
            call.pause()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def fell_back(self, choice: Choice, reason: str) -> None:
        self.metrics.rollout_fallbacks.labels(choice.migration, choice.arm.name, reason).inc()
