"""The embedding client and the cached path against the fake OpenAI endpoint, real models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from mirror.config import ProviderSettings
from mirror.embeddings import (
    CachedEmbeddings,
    EmbeddingCache,
    EmbeddingClient,
    EmbeddingMetrics,
    EmbeddingModel,
    EmbeddingRefused,
    Role,
)
from mirror.events import SHADOW_TRAFFIC_HEADER, ProviderKind
from mirror.runner.limits import ProviderLimiter
from simulation.embeddings import WordLlamaModel
from simulation.providers import OpenAIFake, Served, serve

WORDLLAMA = EmbeddingModel(provider="local", model="wordllama-l2", version="0.4.0")
E5 = EmbeddingModel(
    provider="local",
    model="multilingual-e5-small",
    query_prefix="query: ",
    document_prefix="passage: ",
)
TEXTS = [f"Sentence number {i} about {word}." for i, word in enumerate(["cats", "dogs"] * 150)]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SJ_TEST_EMBEDDINGS_KEY", "sk-test")


def providers(url: str) -> dict[str, ProviderSettings]:
    return {
        "local": ProviderSettings(
            kind=ProviderKind.OPENAI, base_url=url, api_key_env="SJ_TEST_EMBEDDINGS_KEY"
        )
    }


def inputs_sent(fake: OpenAIFake, since: int) -> list[str]:
    sent: list[str] = []
    for request in list(fake.requests)[since:]:
        if request.path == "/v1/embeddings":
            sent.extend(request.json()["input"])
    return sent


async def test_batches_come_back_in_order_as_the_model_embeds_them(
    fake: OpenAIFake, served: Served
) -> None:
    before = len(fake.requests)
    async with EmbeddingClient(providers(served.url), batch_size=128) as client:
        vectors = await client.embed(WORDLLAMA, TEXTS, Role.DOCUMENT)
    requests = list(fake.requests)[before:]
    assert [len(r.json()["input"]) for r in requests] == [128, 128, 44]
    assert all(r.json()["encoding_format"] == "base64" for r in requests)
    assert all(r.header(SHADOW_TRAFFIC_HEADER) for r in requests)
    expected, _ = WordLlamaModel().embed(TEXTS)
    assert vectors.shape == (300, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


async def test_dimensions_are_asked_for_and_rows_normalised(served: Served) -> None:
    short = EmbeddingModel(provider="local", model="wordllama-l2", dimensions=64)
    async with EmbeddingClient(providers(served.url)) as client:
        vectors = await client.embed(short, TEXTS[:10], Role.QUERY)
    assert vectors.shape == (10, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_e5_gets_its_prefix_per_role_and_is_refused_without_one(
    fake: OpenAIFake, served: Served
) -> None:
    before = len(fake.requests)
    async with EmbeddingClient(providers(served.url)) as client:
        query = await client.embed(E5, ["how do I sort a list"], Role.QUERY)
        passage = await client.embed(E5, ["how do I sort a list"], Role.DOCUMENT)
        assert inputs_sent(fake, before) == [
            "query: how do I sort a list",
            "passage: how do I sort a list",
        ]
        assert float(query[0] @ passage[0]) < 0.999
        bare = EmbeddingModel(provider="local", model="multilingual-e5-small")
        with pytest.raises(EmbeddingRefused, match="HTTP 400") as refused:
            await client.embed(bare, ["no prefix"], Role.QUERY)
    assert refused.value.status == 400
    assert not refused.value.retriable


async def test_an_input_type_per_role_goes_in_the_body_only_when_set(
    fake: OpenAIFake, served: Served
) -> None:
    typed = EmbeddingModel(
        provider="local", model="wordllama-l2", query_input_type="search_query",
        document_input_type="search_document",
    )  # fmt: skip
    before = len(fake.requests)
    async with EmbeddingClient(providers(served.url)) as client:
        await client.embed(typed, ["a question"], Role.QUERY)
        await client.embed(typed, ["a passage"], Role.DOCUMENT)
        await client.embed(WORDLLAMA, ["a passage"], Role.DOCUMENT)
    bodies = [r.json() for r in list(fake.requests)[before:] if r.path == "/v1/embeddings"]
    assert [b.get("input_type") for b in bodies] == ["search_query", "search_document", None]
    assert [b["input"] for b in bodies] == [["a question"], ["a passage"], ["a passage"]]


async def test_transient_answers_are_retried_after_the_providers_wait(fake: OpenAIFake) -> None:
    """A 429 with `retry-after-ms`, then a 503: the third attempt answers."""
    failures = [429, 503]

    async def flaky(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and failures:
            status = failures.pop(0)
            body = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit"}})
            headers = [(b"content-type", b"application/json"), (b"retry-after-ms", b"20")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await fake(scope, receive, send)

    registry = CollectorRegistry()
    metrics = EmbeddingMetrics(registry)
    with serve(flaky) as flaky_served:
        async with EmbeddingClient(
            providers(flaky_served.url), metrics=metrics, backoff_base_s=0.01
        ) as client:
            vectors = await client.embed(WORDLLAMA, TEXTS[:3], Role.DOCUMENT)
    assert vectors.shape == (3, 256)
    value = registry.get_sample_value
    assert (
        value(
            "shadowjudge_embedding_requests_total", {"model": "wordllama-l2", "outcome": "retried"}
        )
        == 2
    )  # noqa: E501
    assert (
        value("shadowjudge_embedding_requests_total", {"model": "wordllama-l2", "outcome": "ok"})
        == 1
    )  # noqa: E501


async def test_an_unknown_provider_or_a_missing_key_is_an_error_naming_it(served: Served) -> None:
    keyed = {
        "keyed": ProviderSettings(
            kind=ProviderKind.OPENAI, base_url=served.url, api_key_env="SJ_TEST_UNSET_KEY"
        )
    }
    async with EmbeddingClient(keyed) as client:
        with pytest.raises(EmbeddingRefused, match="SJ_TEST_UNSET_KEY"):
            await client.embed(
                EmbeddingModel(provider="keyed", model="wordllama-l2"), ["x"], Role.QUERY
            )
        with pytest.raises(Exception, match="no provider named 'local'"):
            await client.embed(WORDLLAMA, ["x"], Role.QUERY)


async def test_the_limiters_concurrency_bounds_requests_in_flight(served: Served) -> None:
    limiter = ProviderLimiter(concurrency=2, requests_per_s=None, tokens_per_min=None)
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(limiter.active)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    async with EmbeddingClient(
        providers(served.url), limiters={"local": limiter}, batch_size=10
    ) as client:
        await client.embed(WORDLLAMA, TEXTS, Role.DOCUMENT)
    watcher.cancel()
    assert max(seen) == 2


async def test_the_cache_embeds_each_text_once_per_model_and_counts_it(
    fake: OpenAIFake, served: Served, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    metrics = EmbeddingMetrics(registry)
    model = EmbeddingModel(provider="local", model="wordllama-l2", version="cache-test")
    texts = [f"cached text {i % 40}" for i in range(60)]  # 40 distinct, 20 repeated
    before = len(fake.requests)
    with EmbeddingCache.open(tmp_path / "cache.sqlite3") as cache:
        async with EmbeddingClient(providers(served.url), metrics=metrics) as client:
            cached = CachedEmbeddings(client, cache, metrics)
            first = await cached.embed(model, texts)
            # three concurrent calls overlapping the first and each other
            more = [f"cached text {i}" for i in range(30, 70)]
            again = await asyncio.gather(*(cached.embed(model, more) for _ in range(3)))
    sent = inputs_sent(fake, before)
    assert sorted(sent) == sorted({f"cached text {i}" for i in range(70)})
    assert (first.cached, first.embedded) == (20, 40)
    assert sum(e.embedded for e in again) == 30
    np.testing.assert_array_equal(first.vectors[0], first.vectors[40])
    np.testing.assert_array_equal(again[0].vectors, again[2].vectors)
    labels = {"model": "wordllama-l2", "version": "cache-test"}
    value = registry.get_sample_value
    assert value("shadowjudge_embedding_texts_embedded_total", labels) == 70
    assert value("shadowjudge_embedding_cache_misses_total", labels) == 70
    # hits count texts not sent: 20 repeats in the first call, 3 x 40 - 30 after
    assert value("shadowjudge_embedding_cache_hits_total", labels) == 110


async def test_a_failed_batch_raises_to_every_caller_and_leaves_nothing_pending(
    fake: OpenAIFake, tmp_path: Path
) -> None:
    """The second of three requests is refused: the call fails, a concurrent call waiting on
    the same texts fails too, the other two batches are cached, and the next call embeds only
    the refused batch's texts."""
    refuse = [False, True]

    async def picky(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and refuse and refuse.pop(0):
            body = orjson.dumps({"error": {"message": "no", "type": "invalid_request_error"}})
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await fake(scope, receive, send)

    model = EmbeddingModel(provider="local", model="wordllama-l2", version="failing")
    texts = [f"failing text {i}" for i in range(30)]
    limiter = ProviderLimiter(concurrency=1, requests_per_s=None, tokens_per_min=None)
    with serve(picky) as picky_served, EmbeddingCache.open(tmp_path / "c.sqlite3") as cache:
        async with EmbeddingClient(
            providers(picky_served.url), limiters={"local": limiter}, batch_size=10
        ) as client:
            cached = CachedEmbeddings(client, cache)
            calls = (cached.embed(model, texts), cached.embed(model, texts[12:15]))
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert [type(r).__name__ for r in results] == ["EmbeddingRefused"] * 2
            assert cached._pending == {}
            assert cache.count("wordllama-l2", "failing") == 20
            again = await cached.embed(model, texts)
    assert (again.embedded, again.cached, again.vectors.shape) == (10, 20, (30, 256))
