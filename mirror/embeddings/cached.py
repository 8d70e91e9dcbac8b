"""Embedding through the cache: a text is sent to the provider only when no vector is cached
for its key, nor being fetched by another request of this process right now.

Order of a miss: the provider answers, the vectors are committed to the cache, then the caller
gets them. A process killed after the commit finds them cached when it starts again; one killed
before loses only the answer it never received.
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
        found = await asyncio.to_thread(self.cache.get_many, list(first_text))
        waiting: dict[CacheKey, asyncio.Future[Vector]] = {}
        mine: list[CacheKey] = []
        loop = asyncio.get_running_loop()
        for key in first_text:
            if key in found:
                continue
            if key in self._pending:
                waiting[key] = self._pending[key]
            else:
                future: asyncio.Future[Vector] = loop.create_future()
                future.add_done_callback(_retrieved)
                self._pending[key] = future
                mine.append(key)
        self._count(model, hits=len(keys) - len(mine), misses=len(mine))
        if mine:
            try:
                rows = await self.client.embed(model, [first_text[key] for key in mine], role)
                fresh = dict(zip(mine, rows, strict=True))
                await asyncio.to_thread(self.cache.put_many, fresh)
            except BaseException as exc:
                for key in mine:
                    self._pending.pop(key).set_exception(exc)
                raise
            for key in mine:
                self._pending.pop(key).set_result(fresh[key])
            found.update(fresh)
            if self.metrics is not None:
                self.metrics.embedded.labels(model.model, model.version_label).inc(len(mine))
        for key, pending in waiting.items():
            found[key] = await pending
        vectors = (
            np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
            if keys
            else np.empty((0, model.dimensions or 0), dtype=np.float32)
        )
        return Embedded(vectors, cached=len(keys) - len(mine), embedded=len(mine))

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
