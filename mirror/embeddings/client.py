"""The embedding client: texts in, one row per text out, through the OpenAI embeddings API.

Made like the runner's calls (`mirror.runner.caller`): aiohttp, the provider's credentials from
the environment, the shadow marker header (so no sidecar captures these calls again), retries
of transient failures (429, 5xx, no connection) with tenacity's exponential backoff and jitter,
honouring `retry-after-ms` / `retry-after` and `x-should-retry`; and within the provider's
limits (`mirror.runner.limits.ProviderLimiter`: concurrency, requests per second, tokens per
minute, with each request's estimate corrected by the `usage` the provider reports).

Unlike an arm call, a failure raises (`mirror.embeddings.errors`): a vector is needed, not an
answer to record. Vectors are asked for as base64 (little-endian float32, what the SDK asks
for: exact and a quarter of the JSON), checked (one per input, one width, the width asked
for) and L2-normalised when the model says so. A model's prefix (e5's `query: ` and
`passage: `) is put before every text here, as the application does, and its `input_type` for
the role, when it has one, goes into the request's body.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter
from yarl import URL

from mirror.config import ProviderSettings
from mirror.embeddings.errors import (
    EmbeddingAnswerError,
    EmbeddingError,
    EmbeddingRefused,
    EmbeddingUnavailable,
)
from mirror.embeddings.metrics import EmbeddingMetrics
from mirror.embeddings.model import EmbeddingModel, Role
from mirror.events import Api, ProviderKind
from mirror.runner.caller import API_PATHS, RETRY_STATUSES, request_headers, retry_after_seconds
from mirror.runner.limits import ProviderLimiter, estimate_tokens

Matrix = npt.NDArray[np.float32]

#: Inputs per request. OpenAI takes up to 2,048 inputs and 300,000 tokens per request; smaller
#: batches keep a retry cheap and the work lost to a kill small.
DEFAULT_BATCH_SIZE = 128
DEFAULT_CONCURRENCY = 4


class EmbeddingClient:
    """Embeds texts with the providers of the settings; use as `async with EmbeddingClient(...)`.

    `limiters` by provider name (the runner's `runner.limits`); a provider without one gets
    `DEFAULT_CONCURRENCY` requests at a time and no rate limit.
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderSettings],
        *,
        limiters: Mapping[str, ProviderLimiter] | None = None,
        metrics: EmbeddingMetrics | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout_s: float = 300,
        connect_timeout_s: float = 30,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._providers = dict(providers)
        self._limiters = dict(limiters or {})
        self.metrics = metrics
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_base_s, max=backoff_max_s, jitter=backoff_base_s
        )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EmbeddingClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), timeout=self._timeout
            )
        return self._session

    def provider(self, model: EmbeddingModel) -> ProviderSettings:
        """The model's provider, which must speak the OpenAI API; EmbeddingError otherwise."""
        provider = self._providers.get(model.provider)
        if provider is None:
            known = ", ".join(sorted(self._providers)) or "none"
            raise EmbeddingError(f"no provider named {model.provider!r} (providers: {known})")
        if provider.kind is not ProviderKind.OPENAI:
            raise EmbeddingError(
                f"provider {model.provider!r} is {provider.kind.value}: embeddings are called"
                " through the OpenAI embeddings API"
            )
        return provider

    def limiter(self, model: EmbeddingModel) -> ProviderLimiter:
        limiter = self._limiters.get(model.provider)
        if limiter is None:
            limiter = ProviderLimiter(DEFAULT_CONCURRENCY, None, None)
            self._limiters[model.provider] = limiter
        return limiter

    async def embed(self, model: EmbeddingModel, texts: Sequence[str], role: Role) -> Matrix:
        """Every text's vector, in order; batches run at once as far as the limits allow.

        The first failure raises and cancels the batches still running.
        """
        if not texts:
            return np.empty((0, model.dimensions or 0), dtype=np.float32)
        batches = [
            texts[start : start + self.batch_size]
            for start in range(0, len(texts), self.batch_size)
        ]
        tasks = [asyncio.ensure_future(self.embed_batch(model, b, role)) for b in batches]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one batch failed: the others' vectors would not be used
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return np.concatenate(parts, axis=0)

    async def embed_batch(self, model: EmbeddingModel, texts: Sequence[str], role: Role) -> Matrix:
        """One request (retried when it may pass) for at most a few thousand texts."""
        provider = self.provider(model)
        key = provider.api_key()
        if provider.api_key_env and not key:
            raise EmbeddingRefused(
                f"no API key for provider {model.provider!r}: environment variable"
                f" {provider.api_key_env} is not set",
                401,
            )
        prefix = model.prefix(role)
        body: dict[str, Any] = {
            "model": model.model,
            "input": [prefix + text for text in texts],
            "encoding_format": "base64",
        }
        if model.dimensions is not None:
            body["dimensions"] = model.dimensions
        if input_type := model.input_type(role):
            body["input_type"] = input_type
        payload = orjson.dumps(body)
        url = URL(provider.base_url + API_PATHS[Api.OPENAI_EMBEDDINGS])
        headers = request_headers(provider.kind, key, {})
        estimate = estimate_tokens(body, Api.OPENAI_EMBEDDINGS).total
        async with self.limiter(model).slot(estimate) as slot:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.max_attempts),
                wait=self._wait,
                retry=retry_if_exception(_retriable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    try:
                        vectors, tokens = await self._post(model, url, headers, payload, len(texts))
                    except EmbeddingError as exc:
                        self._count(model, "retried" if exc.retriable else "failed")
                        raise
            self._count(model, "ok")
            slot.used(tokens)
        return vectors

    def _count(self, model: EmbeddingModel, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(model.model, outcome).inc()

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, EmbeddingUnavailable) and error.retry_after_s is not None:
            return min(error.retry_after_s, self.backoff_max_s)
        return float(self._backoff(state))

    async def _post(
        self,
        model: EmbeddingModel,
        url: URL,
        headers: Mapping[str, str],
        payload: bytes,
        count: int,
    ) -> tuple[Matrix, int | None]:
        where = f"{model.provider} {model.model}"
        try:
            async with self._client().post(
                url, data=payload, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.read()
                if status >= 400:
                    text = raw[:500].decode("utf-8", "replace")
                    message = f"{where}: HTTP {status}: {text}"
                    if _should_retry(status, response.headers):
                        retry_after = retry_after_seconds(response.headers)
                        raise EmbeddingUnavailable(message, retry_after)
                    raise EmbeddingRefused(message, status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise EmbeddingUnavailable(f"{where} unreachable: {detail}") from exc
        return parse_embeddings(raw, count, model, where)


def parse_embeddings(
    raw: bytes, count: int, model: EmbeddingModel, where: str
) -> tuple[Matrix, int | None]:
    """The rows of an embeddings answer (by `index`) and its `usage.prompt_tokens`."""
    try:
        answer = orjson.loads(raw)
        data = sorted(answer["data"], key=lambda item: int(item["index"]))
        rows = [_vector(item["embedding"]) for item in data]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EmbeddingAnswerError(f"{where}: not an embeddings answer: {exc}") from exc
    if len(rows) != count:
        raise EmbeddingAnswerError(f"{where}: {len(rows)} vectors for {count} inputs")
    widths = {row.shape[0] for row in rows}
    if len(widths) != 1:
        raise EmbeddingAnswerError(f"{where}: vectors of several widths {sorted(widths)}")
    (width,) = widths
    if model.dimensions is not None and width != model.dimensions:
        raise EmbeddingAnswerError(f"{where}: {width} dimensions, asked for {model.dimensions}")
    vectors = np.stack(rows).astype(np.float32, copy=False)
    if model.normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    usage = answer.get("usage") if isinstance(answer, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return vectors.astype(np.float32, copy=False), tokens if isinstance(tokens, int) else None


def _vector(embedding: object) -> Matrix:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    if isinstance(embedding, list):
        return np.asarray(embedding, dtype=np.float32)
    raise TypeError(f"embedding is {type(embedding).__name__}, not base64 or a list")


def _should_retry(status: int, headers: Mapping[str, str]) -> bool:
    explicit = headers.get("x-should-retry", "").strip().lower()
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in RETRY_STATUSES


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, EmbeddingError) and exc.retriable
