"""Prometheus metrics of the embedding cache and client, on a registry the caller passes.

The process that serves `/metrics` owns the registry (the runner's, the dashboards'); these
counters are added to it. Hit rate is `hits / (hits + misses)`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class EmbeddingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = ["model", "version"]
        self.hits = Counter(
            "shadowjudge_embedding_cache_hits",
            "Texts not sent to the provider: cached, repeated in the call, or already in flight.",
            labels,
            registry=registry,
        )
        self.misses = Counter(
            "shadowjudge_embedding_cache_misses",
            "Texts not in the embedding cache, sent to the provider.",
            labels,
            registry=registry,
        )
        self.embedded = Counter(
            "shadowjudge_embedding_texts_embedded",
            "Texts the provider embedded and the cache stored, per model.",
            labels,
            registry=registry,
        )
        self.requests = Counter(
            "shadowjudge_embedding_requests",
            "Embedding requests made (retries included), by outcome: ok, retried, failed.",
            ["model", "outcome"],
            registry=registry,
        )
