"""One candidate call, made the way the app's SDK would make it, returned as an `ArmResult`.

The runner asks each arm through `ArmCaller.call`: the JSON body is POSTed to the provider's
API path with the provider's credentials (from the environment, never from an event), marked
with `SHADOW_TRAFFIC_HEADER` so no sidecar or in-process transport captures it again. Streams
are read chunk by chunk with each chunk's `time.perf_counter()` arrival time and handed, like
the sidecar's capture of the primary, to `normalize_answer` — one code path, so time to first
token and every other figure compare like for like with the primary's.

Failures are data, not exceptions: a refused, unreachable, slow or broken arm yields an
`ArmResult` with its error (HTTP, UNREACHABLE, TIMEOUT, INCOMPLETE), and a provider whose key
is not set yields SKIPPED. Transient failures (429, 500, 502, 503, 504, 529, no connection)
are retried with exponential backoff and jitter, honouring the provider's `retry-after-ms` /
`retry-after` and `x-should-retry`, as the official SDKs do; the result is the last attempt's.
A stream that breaks after its answer began is not retried: the provider has already done
(and billed) the work, and what arrived is itself an answer to record.

The caller never executes tools: a tool call the model asks for is recorded as asked.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.wait import wait_exponential_jitter
from yarl import URL

from mirror.answers.normalize import Answer, normalize_answer
from mirror.config import ProviderSettings
from mirror.events import SHADOW_TRAFFIC_HEADER, Api, ArmResult, ErrorInfo, ErrorKind, ProviderKind

API_PATHS: Mapping[Api, str] = {
    Api.OPENAI_CHAT: "/v1/chat/completions",
    Api.OPENAI_RESPONSES: "/v1/responses",
    Api.OPENAI_EMBEDDINGS: "/v1/embeddings",
    Api.ANTHROPIC_MESSAGES: "/v1/messages",
}
#: 529 is Anthropic's "overloaded".
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
SHADOW_TRAFFIC_VALUE = "runner"
USER_AGENT = "shadowjudge-runner"
#: Response bytes kept for normalisation; the rest is read (for the latency) but dropped.
DEFAULT_MAX_BODY_BYTES = 8 << 20
_BIG_BODY = 1 << 20  # aiohttp warns when it copies bigger raw bytes on the event loop
_PASSED_THROUGH = {ProviderKind.OPENAI: "openai-beta", ProviderKind.ANTHROPIC: "anthropic-beta"}
#: Content-encoding and length describe the wire bytes; the body handed on is decoded.
_WIRE_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


@dataclass(frozen=True, slots=True)
class _Attempt:
    result: ArmResult
    retriable: bool = False
    retry_after_s: float | None = None


class ArmCaller:
    """Makes candidate calls; owns its aiohttp session unless one is given.

    Use as `async with ArmCaller() as caller:` or call `close()`; a session passed in is the
    caller's to close. `timeout_s` bounds one attempt from sending to the last byte (generous:
    long generations are normal); `connect_timeout_s` bounds getting a connection.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout_s: float = 600,
        connect_timeout_s: float = 30,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_connections: int = 1000,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self.max_body_bytes = max_body_bytes
        self._max_connections = max_connections
        self._urls: dict[tuple[str, Api], URL] = {}
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_base_s, max=backoff_max_s, jitter=backoff_base_s
        )

    async def __aenter__(self) -> ArmCaller:
        self._client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
            )
        return self._session

    async def call(
        self,
        *,
        api: Api,
        provider_name: str,
        provider: ProviderSettings,
        body: dict[str, Any],
        replay_headers: Mapping[str, str],
        extra_headers: Mapping[str, str] | None = None,
    ) -> ArmResult:
        """Call the arm once (retrying transient failures); never raises for provider trouble.

        `replay_headers` are the captured call's replayable headers (`anthropic-version`,
        `anthropic-beta`, `openai-beta`). `extra_headers` are sent as given, except that they
        cannot replace the credentials, the shadow marker or the content headers.
        A provider whose `api_key_env` is set but empty in the environment is SKIPPED; one
        without `api_key_env` (a local server) is called without credentials.
        """
        model = body.get("model") if isinstance(body.get("model"), str) else None
        key = provider.api_key()
        if provider.api_key_env and not key:
            message = (
                f"no API key for provider {provider_name!r}: "
                f"environment variable {provider.api_key_env} is not set"
            )
            return _without_answer(api, provider_name, model, ErrorKind.SKIPPED, message)
        try:
            payload = orjson.dumps(body)
        except TypeError as exc:
            message = f"request body is not JSON-serialisable: {exc}"
            return _without_answer(api, provider_name, model, ErrorKind.SKIPPED, message)
        url = self._url(provider.base_url, api)
        headers = request_headers(provider.kind, key, replay_headers, extra_headers)

        first = await self._attempt(api, provider_name, model, url, headers, payload)
        if not first.retriable or self.max_attempts == 1:
            # Most calls end here: the retry machinery (a few objects and closures a call)
            # only starts when an attempt asks for another.
            return first.result
        made = [first]

        async def attempt() -> _Attempt:
            if made:  # the first attempt, already made: tenacity counts it as attempt 1
                return made.pop()
            return await self._attempt(api, provider_name, model, url, headers, payload)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_result(lambda outcome: outcome.retriable),
            retry_error_callback=_last_result,
        )
        final: _Attempt = await retrying(attempt)
        return final.result

    def _url(self, base_url: str, api: Api) -> URL:
        """The API's URL at `base_url`, parsed once (a few per provider, not one per call)."""
        key = (base_url, api)
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = URL(base_url + API_PATHS[api])
        return url

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            last: _Attempt = outcome.result()
            retry_after = last.retry_after_s
            if retry_after is not None:
                return min(retry_after, self.backoff_max_s)
        return float(self._backoff(state))

    async def _attempt(
        self,
        api: Api,
        provider_name: str,
        model: str | None,
        url: URL,
        headers: Mapping[str, str],
        payload: bytes,
    ) -> _Attempt:
        session = self._client()
        chunks: list[bytes] = []
        times: list[float] = []
        kept = 0
        truncated = False
        status: int | None = None
        raw_headers: Sequence[tuple[bytes, bytes]] = ()
        response_headers: CIMultiDictProxy[str] | None = None
        error: ErrorInfo | None = None
        retriable = False
        started = time.perf_counter()
        try:
            async with session.post(
                url,
                data=payload if len(payload) < _BIG_BODY else io.BytesIO(payload),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                auto_decompress=True,
            ) as response:
                status = response.status
                response_headers = response.headers
                raw_headers = [
                    (k, v) for k, v in response.raw_headers if k.lower() not in _WIRE_HEADERS
                ]
                async for chunk in response.content.iter_any():
                    arrived = time.perf_counter()
                    if truncated:
                        continue
                    room = self.max_body_bytes - kept
                    if len(chunk) > room:
                        chunk, truncated = chunk[:room], True
                    chunks.append(chunk)
                    times.append(arrived)
                    kept += len(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error, retriable = _transport_error(exc, provider_name, answered=status is not None)
        ended = time.perf_counter()
        answer = Answer(
            api=api,
            provider=provider_name,
            status_code=status,
            headers=raw_headers,
            chunks=chunks,
            chunk_times=times,
            started=started,
            ended=ended,
            truncated=truncated,
            error=error,
            request_model=model,
        )
        result = normalize_answer(answer)
        if status is None or error is not None or response_headers is None:
            return _Attempt(result, retriable)
        should_retry = _should_retry(status, response_headers)
        retry_after = retry_after_seconds(response_headers) if should_retry else None
        return _Attempt(result, should_retry, retry_after)


def request_headers(
    kind: ProviderKind,
    key: str | None,
    replay_headers: Mapping[str, str],
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a shadow call: credentials, API version and betas, the shadow marker."""
    replay = {name.lower(): value for name, value in replay_headers.items()}
    headers = {name.lower(): value for name, value in (extra_headers or {}).items()}
    headers.update(
        {
            "content-type": "application/json",
            "accept-encoding": "gzip",
            "user-agent": USER_AGENT,
            SHADOW_TRAFFIC_HEADER: SHADOW_TRAFFIC_VALUE,
        }
    )
    headers.pop("authorization", None)
    headers.pop("x-api-key", None)
    if kind is ProviderKind.ANTHROPIC:
        if key:
            headers["x-api-key"] = key
        headers["anthropic-version"] = replay.get("anthropic-version") or DEFAULT_ANTHROPIC_VERSION
    elif key:
        headers["authorization"] = f"Bearer {key}"
    beta = _PASSED_THROUGH[kind]
    if replay.get(beta):
        headers[beta] = replay[beta]
    return headers


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """The provider's requested wait: `retry-after-ms`, else `retry-after` (seconds or date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = -1.0
        if 0 <= value < float("inf"):
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(seconds, 0.0)
    return seconds if 0 <= seconds < float("inf") else None


def _should_retry(status: int, headers: Mapping[str, str]) -> bool:
    if status < 400:
        return False
    # Providers may say so explicitly; the official SDKs obey that before the status rules.
    explicit = headers.get("x-should-retry", "").strip().lower()
    if explicit == "true":
        return True
    if explicit == "false":
        return False
    return status in RETRY_STATUSES


def _transport_error(
    exc: BaseException, provider_name: str, *, answered: bool
) -> tuple[ErrorInfo, bool]:
    """The error of a failed attempt, and whether to try again.

    Before an answer began: no connection (retried), a connect timeout (retried) or the whole
    attempt's timeout (not retried: it already waited the full allowance). After: the answer
    broke or timed out mid-way (not retried; what arrived is recorded).
    """
    name = type(exc).__name__
    detail = f"{name}: {exc}" if str(exc) else name
    timed_out = isinstance(exc, TimeoutError)
    if answered:
        kind = ErrorKind.TIMEOUT if timed_out else ErrorKind.INCOMPLETE
        return ErrorInfo(kind=kind, message=f"{provider_name}: answer broke off: {detail}"), False
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        message = f"{provider_name}: no connection in time: {detail}"
        return ErrorInfo(kind=ErrorKind.TIMEOUT, message=message), True
    if timed_out:
        message = f"{provider_name}: no answer in time: {detail}"
        return ErrorInfo(kind=ErrorKind.TIMEOUT, message=message), False
    message = f"{provider_name} unreachable: {detail}"
    return ErrorInfo(kind=ErrorKind.UNREACHABLE, message=message), True


def _without_answer(
    api: Api, provider_name: str, model: str | None, kind: ErrorKind, message: str
) -> ArmResult:
    now = time.perf_counter()
    return normalize_answer(
        Answer(
            api=api,
            provider=provider_name,
            status_code=None,
            headers=(),
            chunks=(),
            chunk_times=(),
            started=now,
            ended=now,
            error=ErrorInfo(kind=kind, message=message),
            request_model=model,
        )
    )


def _last_result(state: RetryCallState) -> _Attempt:
    """Out of attempts: the last attempt's result is the answer (an error, not an exception)."""
    assert state.outcome is not None
    result: _Attempt = state.outcome.result()
    return result
