"""Embedding through the cache: a text is sent to the provider only when no vector is cached
for its key, nor being fetched by another request of this process right now.

Misses are sent in the client's batches, at once as far as the provider's limits allow. Order
of a batch: the provider answers, its vectors are committed to the cache, then they are handed
on. A process killed after the commit finds them cached when it starts again; one killed
before loses only the answer it never received. When one batch fails the others still finish
and are cached, and the call raises the first failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mirror.embeddings.cache import EmbeddingCache, Vector
from mirror.embeddings.client import EmbeddingClient, Matrix
from mirror.embeddings.metrics import EmbeddingMetrics
from mirror.embeddings.model import CacheKey, EmbeddingModel, Role


@dataclass(frozen=True, slots=True)
class Embedded:
    """The vectors of a call, one row per text, and how many texts each source served."""

    vectors: Matrix
    cached: int
    embedded: int


class CachedEmbeddings:
    """`EmbeddingClient` behind an `EmbeddingCache`, counted on `EmbeddingMetrics`."""

    def __init__(
        self,
        client: EmbeddingClient,
        cache: EmbeddingCache,
        metrics: EmbeddingMetrics | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.metrics = metrics
        self._pending: dict[CacheKey, asyncio.Future[Vector]] = {}

    async def embed(
        self, model: EmbeddingModel, texts: Sequence[str], role: Role = Role.DOCUMENT
    ) -> Embedded:
        keys = [model.key(text, role) for text in texts]
        first_text: dict[CacheKey, str] = {}
        for key, text in zip(keys, texts, strict=True):
            first_text.setdefault(key, text)
        # Claim every key nobody is fetching BEFORE looking in the cache: a concurrent call
        # then either waits for this one or finds the vectors this one committed.
        waiting: dict[CacheKey, asyncio.Future[Vector]] = {}
        claimed: list[CacheKey] = []
        loop = asyncio.get_running_loop()
        for key in first_text:
            if key in self._pending:
                waiting[key] = self._pending[key]
            else:
                future: asyncio.Future[Vector] = loop.create_future()
                future.add_done_callback(_retrieved)
                self._pending[key] = future
                claimed.append(key)
        try:
            found = await asyncio.to_thread(self.cache.get_many, claimed)
        except BaseException as exc:
            self._release(claimed, exc)
            raise
        mine: list[CacheKey] = []
        for key in claimed:
            if key in found:
                self._pending.pop(key).set_result(found[key])
            else:
                mine.append(key)
        self._count(model, hits=len(keys) - len(mine), misses=len(mine))
        if mine:
            size = self.client.batch_size
            chunks = [mine[start : start + size] for start in range(0, len(mine), size)]
            texts_of = [[first_text[key] for key in chunk] for chunk in chunks]
            results = await asyncio.gather(
                *(self._fetch(model, c, t, role) for c, t in zip(chunks, texts_of, strict=True)),
                return_exceptions=True,
            )
            errors = [result for result in results if isinstance(result, BaseException)]
            if errors:  # the batches that did answer are cached: only the failed ones are lost
                raise errors[0]
            for result in results:
                assert not isinstance(result, BaseException)
                found.update(result)
        for key, pending in waiting.items():
            found[key] = await pending
        vectors = (
            np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
            if keys
            else np.empty((0, model.dimensions or 0), dtype=np.float32)
        )
        return Embedded(vectors, cached=len(keys) - len(mine), embedded=len(mine))

    async def _fetch(
        self, model: EmbeddingModel, keys: list[CacheKey], texts: list[str], role: Role
    ) -> dict[CacheKey, Vector]:
        """One request: its vectors cached, then handed to whoever waits for them."""
        try:
            rows = await self.client.embed_batch(model, texts, role)
            fresh = dict(zip(keys, rows, strict=True))
            await asyncio.to_thread(self.cache.put_many, fresh)
        except BaseException as exc:
            self._release(keys, exc)
            raise
        for key in keys:
            self._pending.pop(key).set_result(fresh[key])
        if self.metrics is not None:
            self.metrics.embedded.labels(model.model, model.version_label).inc(len(keys))
        return fresh

    def _release(self, keys: list[CacheKey], exc: BaseException) -> None:
        """Fail the futures of keys this call could not fetch, so that waiters stop waiting."""
        for key in keys:
            future = self._pending.pop(key)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()  # waiters see a cancellation, as this call does
            else:
                future.set_exception(exc)

    def _count(self, model: EmbeddingModel, *, hits: int, misses: int) -> None:
        if self.metrics is None:
            return
        labels = (model.model, model.version_label)
        if hits:
            self.metrics.hits.labels(*labels).inc(hits)
        if misses:
            self.metrics.misses.labels(*labels).inc(misses)


def _retrieved(future: asyncio.Future[Vector]) -> None:
    """Mark a failed fetch's error as seen: the request that made it raises it already."""
    if not future.cancelled():
        future.exception()
