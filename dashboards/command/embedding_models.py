"""What the `shadowjudge embeddings` commands share: model specs from the command line, the
provider check, the cache options, and the embedding client behind the cache.

A command names a model as `PROVIDER:MODEL` (the provider an entry of the settings'
`providers`); errors name the flag that was given, so `--from nope:m` says `--from`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mirror.errors import ConfigError

if TYPE_CHECKING:
    from dashboards.settings import Settings
    from mirror.embeddings import CachedEmbeddings, EmbeddingModel

DEFAULT_CACHE = Path("var/embeddings/cache.sqlite3")


def cache_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"default: ./{DEFAULT_CACHE}"
    )
    parser.add_argument(
        "--cache-max-age-days",
        type=float,
        default=30.0,
        help="vectors older than this are deleted from the cache (default 30)",
    )


def check_provider(settings: Settings, name: str, flag: str = "--provider") -> None:
    if name not in settings.providers:
        known = ", ".join(sorted(settings.providers)) or "none"
        raise ConfigError(f"{flag} {name}: no provider of that name (providers: {known})")


def model_spec(
    spec: str,
    flag: str,
    *,
    query_prefix: str = "",
    document_prefix: str = "",
    query_input_type: str = "",
    document_input_type: str = "",
) -> EmbeddingModel:
    """`PROVIDER:MODEL` as an embedding model; ConfigError naming `flag` when malformed."""
    from mirror.embeddings import EmbeddingModel

    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name:
        raise ConfigError(f"{flag} {spec}: expected PROVIDER:MODEL")
    return EmbeddingModel(
        provider=provider,
        model=name,
        query_prefix=query_prefix,
        document_prefix=document_prefix,
        query_input_type=query_input_type,
        document_input_type=document_input_type,
    )


@asynccontextmanager
async def cached_embeddings(
    settings: Settings, args: argparse.Namespace, models: Sequence[EmbeddingModel]
) -> AsyncIterator[CachedEmbeddings]:
    """The client (within the provider's `runner.limits`) behind the cache, opened and closed."""
    from prometheus_client import CollectorRegistry

    from mirror.embeddings import (
        CachedEmbeddings,
        EmbeddingCache,
        EmbeddingClient,
        EmbeddingMetrics,
    )
    from mirror.migrations import LimitSettings
    from mirror.runner.limits import ProviderLimiter

    limiters = {}
    for model in models:
        limits = settings.runner.limits.get(model.provider, LimitSettings())
        limiters[model.provider] = ProviderLimiter(
            limits.concurrency, limits.requests_per_s, limits.tokens_per_min
        )
    # the command's own registry: nothing serves /metrics for a one-shot command
    metrics = EmbeddingMetrics(CollectorRegistry())
    try:
        cache = EmbeddingCache.open(args.cache, max_age_days=args.cache_max_age_days)
    except ValueError as exc:
        raise ConfigError(f"--cache-max-age-days: {exc}") from exc
    try:
        async with EmbeddingClient(
            settings.providers,
            limiters=limiters,
            metrics=metrics,
            batch_size=getattr(args, "batch_size", 128),
        ) as client:
            yield CachedEmbeddings(client, cache, metrics)
    finally:
        cache.close()
