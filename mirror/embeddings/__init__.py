"""Embedding calls and their cache: the mirror's side of embedding migrations.

`EmbeddingModel` says what is called (provider, model, version label, dimensions,
normalisation, query and document prefixes); `EmbeddingClient` calls the OpenAI embeddings API
in batches within the provider's limits; `EmbeddingCache` keeps each vector once per
(text hash, model, version, dimensions, normalisation, prefix) in a local SQLite file with a
retention limit; `CachedEmbeddings` puts the two together and counts hits, misses and texts
embedded on `EmbeddingMetrics`. Used by `shadowjudge embeddings reembed`, `thresholds` and
`compare`, and by the runner's embedding arms (`mirror.runner.embedding_arm`).
"""

from mirror.embeddings.cache import DEFAULT_MAX_AGE_DAYS, EmbeddingCache
from mirror.embeddings.cached import CachedEmbeddings, Embedded
from mirror.embeddings.client import DEFAULT_BATCH_SIZE, EmbeddingClient
from mirror.embeddings.errors import (
    EmbeddingAnswerError,
    EmbeddingError,
    EmbeddingRefused,
    EmbeddingUnavailable,
)
from mirror.embeddings.metrics import EmbeddingMetrics
from mirror.embeddings.model import CacheKey, EmbeddingModel, Role

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_AGE_DAYS",
    "CacheKey",
    "CachedEmbeddings",
    "Embedded",
    "EmbeddingAnswerError",
    "EmbeddingCache",
    "EmbeddingClient",
    "EmbeddingError",
    "EmbeddingMetrics",
    "EmbeddingModel",
    "EmbeddingRefused",
    "EmbeddingUnavailable",
    "Role",
]
