"""One served call of a staged rollout (`ServedCall`), started by `mirror.sidecar.served`.

It runs the call: the answer goes to the app as it arrives, passed through (the same API) or
translated back (`translate_response` for a whole body, `StreamTranslator` for a stream), with
the candidate's `model`.

The fallback rule (the live-path guarantee). Until the answer is committed to the app nothing
has reached it, and any failure serves the call from the primary exactly as if the candidate
had not been chosen, counted in `shadowjudge_rollout_fallbacks_total{reason}`:
`error_status` (an HTTP status of 300 or more, or a stream that opens with an error event),
`unreachable` (no connection, or it ended before the answer began), `timeout` (no commit
within `sidecar.rollout_first_byte_timeout_s`), `untranslatable` (the request, or the answer
before its commit), `no_key`, and `internal` (a bug of ours, caught: never the app's error).
The answer is committed at its first content: a passed-through stream's first event, a
translated stream's second (the first after the message start, so a first block the app's
API cannot express still falls back), the first bytes of a body passed through, a whole body
once translated. A call that is not streamed commits only with its whole answer, so the
timeout bounds its generation. After the commit a failure cuts the app's connection, as a
provider breaking mid-answer would, counted as `broken`; the served counter moves at the
commit.

Capture: the candidate's bytes as it sent them (decoded, before translation) go into an
`Exchange` marked `served`, published when the answer ends; a fallback publishes nothing of
the candidate (the primary's own capture follows, as for any call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
import orjson

from mirror.errors import TruncatedStream, Untranslatable
from mirror.events import Api, ErrorInfo, ErrorKind
from mirror.migrations import target_api
from mirror.sidecar.candidate import (
    API_PATHS,
    LAST_CHUNK,
    Fallback,
    answer_head,
    chunk,
    decoded_headers,
    events_in,
    include_usage,
    opens_with_error,
    request_body,
    request_headers,
)
from mirror.sidecar.capture import Exchange, Served
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.request import Request
from mirror.sidecar.rollout import Choice
from mirror.sidecar.wire import AppConnection
from mirror.translate.response import translate_response
from mirror.translate.stream import StreamTranslator

log = logging.getLogger(__name__)

_CLIENT_LEFT = ErrorInfo(kind=ErrorKind.CLIENT_DISCONNECT, message="the app closed the connection")


class Server(Protocol):
    """What a served call uses of the `CandidateServer` that started it (`served`)."""

    metrics: SidecarMetrics
    first_byte_timeout_s: float
    max_body_bytes: int
    submit: Callable[[Exchange], None] | None
    observe: Callable[[str, int, float], None]

    def session(self) -> aiohttp.ClientSession: ...

    def fell_back(self, choice: Choice, reason: str) -> None: ...


class ServedCall:
    """One served call: the candidate's request, its answer to the app, or the fallback."""

    def __init__(
        self,
        server: Server,
        app: AppConnection,
        request: Request,
        choice: Choice,
        api: Api,
        primary_provider: str,
        primary: Callable[[], None],
    ) -> None:
        self.server = server
        self.app = app
        self.request = request
        self.choice = choice
        self.api = api
        self.target = target_api(api, choice.provider.kind)
        self.primary_provider = primary_provider
        self.primary = primary
        self.task: asyncio.Task[None] | None = None
        self.committed = False
        self.exchange: Exchange | None = None
        self.started = 0.0
        self.status = 0
        self._left = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._response: aiohttp.ClientResponse | None = None

    # --- wire.Answering ------------------------------------------------------------------------

    def pause(self) -> None:
        self._writable.clear()

    def resume(self) -> None:
        self._writable.set()

    def app_left(self) -> None:
        self._left = True
        if self.task is not None:
            self.task.cancel()

    # --- the call ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            self._close_response()
            if not self._left:
                raise  # the sidecar is stopping
            self._end(_CLIENT_LEFT)
            self.app.done(keep_alive=False)
        except Fallback as fallback:
            self._close_response()
            self._fall_back(fallback.reason, fallback.detail)
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not become the app's error
            self._close_response()
            log.exception("serving a rollout call failed")
            if self.committed:
                self._broken(f"internal error: {type(exc).__name__}: {exc}")
            else:
                self._fall_back("internal", f"{type(exc).__name__}: {exc}")

    async def _serve(self) -> None:
        payload = orjson.dumps(request_body(self.choice, self.api, self.target))
        headers = request_headers(self.choice, self.api, self.target, self.primary_provider)
        url = self.choice.provider.base_url + API_PATHS[self.target]
        session = self.server.session()
        self.started = time.perf_counter()
        self.exchange = self._new_exchange()
        try:
            async with asyncio.timeout(self.server.first_byte_timeout_s):
                response = self._response = await session.post(
                    url, data=payload, headers=headers, allow_redirects=False
                )
                self.status = response.status
                if self.exchange is not None:
                    self.exchange.status = response.status
                    self.exchange.response_headers = decoded_headers(response.raw_headers)
                if response.status >= 300:
                    raise Fallback("error_status", f"HTTP {response.status}")
                first, translator, ended = await self._until_commit(response)
        except TimeoutError as exc:
            raise Fallback("timeout", "no answer by the first-byte deadline") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise Fallback("unreachable", f"{type(exc).__name__}: {exc}") from exc
        self._commit(response, first, translator, ended)
        if ended:
            self._finish(response)
        else:
            assert translator is not None
            await self._stream_rest(response, translator)

    def _new_exchange(self) -> Exchange | None:
        if self.server.submit is None:
            return None
        choice = self.choice
        return Exchange(
            api=self.api,
            provider=self.primary_provider,
            request_headers=self.request.headers,
            request_body=self.request.body,
            started=self.started,
            wall_started=time.time(),
            served=Served(
                choice.migration,
                choice.arm.name,
                choice.provider_name,
                choice.arm.model,
                self.target,
            ),
        )

    # --- the answer ----------------------------------------------------------------------------

    async def _until_commit(
        self, response: aiohttp.ClientResponse
    ) -> tuple[bytes, StreamTranslator | None, bool]:
        """Read until the answer can be committed (see the module docs): the bytes to send
        first, the translator of the rest (None: a whole body), and whether it has ended."""
        streamed = response.headers.get("content-type", "").lower().startswith("text/event-stream")
        translated = self.target is not self.api
        if translated and streamed != bool(self.choice.body.get("stream")):
            detail = "a stream to a call asked whole" if streamed else "a whole answer to a stream"
            raise Fallback("untranslatable", detail)
        translator: StreamTranslator | None = None
        if streamed or not translated:
            translator = StreamTranslator(
                source=self.target,
                target=self.api,
                model=self.choice.arm.model,
                include_usage=include_usage(self.choice.body),
            )
        source: list[bytes] = []
        out: list[bytes] = []
        while chunk_in := await response.content.readany():
            self._record(chunk_in)
            source.append(chunk_in)
            if translator is None:
                continue  # a whole body: translated at its end
            out.append(self._feed(translator, chunk_in))
            if not streamed:
                return b"".join(out), translator, False  # a body passed through
            if opens_with_error(source):
                raise Fallback("error_status", "the stream opened with an error event")
            sent = b"".join(out)
            if events_in(sent) >= (2 if translated else 1):
                return sent, translator, False
        if translator is None:
            try:
                whole = translate_response(
                    b"".join(source),
                    source=self.target,
                    target=self.api,
                    model=self.choice.arm.model,
                )
            except Untranslatable as exc:
                raise Fallback("untranslatable", exc.reason) from exc
            return whole, None, True
        if streamed and opens_with_error(source):
            raise Fallback("error_status", "the stream opened with an error event")
        try:
            translator.close()
        except TruncatedStream as exc:
            raise Fallback("unreachable", "the stream ended before its answer began") from exc
        return b"".join(out), translator, True

    @staticmethod
    def _feed(translator: StreamTranslator, data: bytes) -> bytes:
        try:
            return translator.feed(data)
        except Untranslatable as exc:
            raise Fallback("untranslatable", exc.reason) from exc

    def _commit(
        self,
        response: aiohttp.ClientResponse,
        first: bytes,
        translator: StreamTranslator | None,
        ended: bool,
    ) -> None:
        """Send the head and the first bytes: from here on, the candidate's answer is the app's."""
        self.committed = True
        choice = self.choice
        self.server.metrics.rollout_served.labels(choice.migration, choice.arm.name).inc()
        head = answer_head(
            self.status,
            passed=response.raw_headers if self.target is self.api else None,
            length=len(first) if translator is None else None,
            keep_alive=self.request.keep_alive,
            served_by=f"{choice.migration}/{choice.arm.name}",
        )
        if translator is None:
            self.app.write(head + first)
        else:
            self.app.write(head + chunk(first) + (LAST_CHUNK if ended else b""))

    async def _stream_rest(
        self, response: aiohttp.ClientResponse, translator: StreamTranslator
    ) -> None:
        try:
            while data := await response.content.readany():
                self._record(data)
                out = translator.feed(data)
                if out:
                    if not self._writable.is_set():
                        await self._writable.wait()
                    self.app.write(chunk(out))
            translator.close()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._broken(f"the candidate's answer broke off: {type(exc).__name__}: {exc}")
            return
        except (Untranslatable, TruncatedStream) as exc:
            self._broken(f"the candidate's answer cannot go on: {exc}")
            return
        self.app.write(LAST_CHUNK)
        self._finish(response)

    def _record(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        try:
            exchange.record(data, time.perf_counter(), self.server.max_body_bytes)
        except Exception:  # noqa: BLE001 - capture may fail; the call may not
            log.exception("capture failed on a served call; the call goes on uncaptured")
            self.exchange = None

    # --- ends ----------------------------------------------------------------------------------

    def _finish(self, response: aiohttp.ClientResponse) -> None:
        response.release()
        self._response = None
        self._end(None)
        self.app.done(self.request.keep_alive)

    def _broken(self, reason: str) -> None:
        self._close_response()
        log.warning("rollout %s/%s: %s", self.choice.migration, self.choice.arm.name, reason)
        self.server.fell_back(self.choice, "broken")
        self._end(ErrorInfo(kind=ErrorKind.INCOMPLETE, message=reason))
        self.app.cut()
        self.app.done(keep_alive=False)

    def _fall_back(self, reason: str, detail: str) -> None:
        choice = self.choice
        log.info("rollout %s/%s: the primary serves (%s: %s)", *_names(choice), reason, detail)
        self.server.fell_back(choice, reason)
        self.exchange = None  # the primary's own capture follows
        if self.app.upstream is self:
            self.app.upstream = None
        if self.app.closed:
            self.app.done(keep_alive=False)
            return
        try:
            self.primary()
        except Exception:  # noqa: BLE001 - the app sees a cut, as from a broken upstream
            log.exception("forwarding a fallen-back call to the primary failed")
            self.app.cut()
            self.app.done(keep_alive=False)

    def _end(self, error: ErrorInfo | None) -> None:
        self.server.observe(self.api.value, self.status, self.started)
        exchange, self.exchange = self.exchange, None
        submit = self.server.submit
        if exchange is None or submit is None:
            return
        exchange.ended = time.perf_counter()
        exchange.error = error
        submit(exchange)

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()


def _names(choice: Choice) -> tuple[str, str]:
    return choice.migration, choice.arm.name
