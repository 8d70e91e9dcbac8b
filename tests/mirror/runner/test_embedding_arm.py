"""The runner's embedding arms: texts and roles out of captured calls, the bottom-k reference
set, and the whole path — captured embedding calls on the memory bus, the runner calling the
candidate (and the primary, for the reference set) through the embedding cache against the
fake OpenAI endpoint serving the offline models, the judge writing the reference rows."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from judge.config import JudgeSettings, StoreSettings
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from judge.worker import JudgeWorker
from mirror.bus.memory import MemoryBus
from mirror.config import ProviderSettings, TopicSettings
from mirror.embeddings import EmbeddingCache, Role
from mirror.errors import ConfigError
from mirror.events import (
    Api,
    ArmResult,
    CapturedCall,
    EmbeddingSummary,
    ErrorKind,
    Output,
    ProviderKind,
    ShadowPair,
    decode_vector,
    dump_event,
    parse_shadow_pair,
)
from mirror.migrations import EmbeddingMigrationSettings, MigrationSettings, RunnerSettings
from mirror.pricing import Price, PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.embedding_arm import (
    OTHER_STRATUM,
    PRUNE_EVERY_S,
    BottomK,
    EmbeddingArms,
    captured_texts,
    segment_key,
    text_key,
)
from mirror.runner.limits import SpendCap
from mirror.runner.metrics import RunnerMetrics
from mirror.runner.worker import Runner
from simulation.providers import OpenAIFake, Served
from tests.chdb import drop_database, new_url
from tests.judge.embeddings.corpus import load

log = logging.getLogger(__name__)
TOPICS = TopicSettings()
KEY_ENV = "SJ_TEST_EMBEDDING_ARM_KEY"
E5_SIDE = {"query_prefix": "query: ", "document_prefix": "passage: "}


def settings(**fields: Any) -> EmbeddingMigrationSettings:
    return EmbeddingMigrationSettings.model_validate(fields)


# -- texts and roles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "segment", "role", "expected"),
    [
        ({"input": "where is x"}, {}, "auto", [("where is x", Role.QUERY)]),
        ({"input": ["a", "b"]}, {}, "auto", [("a", Role.DOCUMENT), ("b", Role.DOCUMENT)]),
        ({"input": ["a"], "input_type": "search_query"}, {}, "auto", [("a", Role.QUERY)]),
        ({"input": "a", "input_type": "search_document"}, {}, "auto", [("a", Role.DOCUMENT)]),
        ({"input": "a", "input_type": "passage"}, {}, "auto", [("a", Role.DOCUMENT)]),
        ({"input": "a"}, {"role": "document"}, "auto", [("a", Role.DOCUMENT)]),
        ({"input": ["a", "b"]}, {}, "query", [("a", Role.QUERY), ("b", Role.QUERY)]),
        ({"input": "a"}, {}, "document", [("a", Role.DOCUMENT)]),
        ({"input": "a"}, {"kind": "document"}, "segment.kind", [("a", Role.DOCUMENT)]),
        ({"input": "a"}, {"kind": "other"}, "segment.kind", [("a", Role.QUERY)]),
    ],
)
def test_roles(
    request_: dict[str, Any], segment: dict[str, str], role: str, expected: list[Any]
) -> None:
    texts = captured_texts(request_, segment, settings(role=role))
    assert not isinstance(texts, str)
    assert [(t.text, t.role) for t in texts] == expected
    assert all(t.key == hashlib.sha256(t.text.encode()).hexdigest() for t in texts)


def test_the_apps_prefix_is_stripped_and_names_the_role() -> None:
    primary = {"query_prefix": "query: ", "document_prefix": "passage: "}
    texts = captured_texts(
        {"input": ["query: open a file", "passage: open() opens a file", "plain"]},
        {},
        settings(primary=primary),
    )
    assert not isinstance(texts, str)
    assert [(t.text, t.role) for t in texts] == [
        ("open a file", Role.QUERY),
        ("open() opens a file", Role.DOCUMENT),
        ("plain", Role.DOCUMENT),  # a batch: documents
    ]
    assert texts[0].key == text_key("open a file")  # keyed without the prefix


@pytest.mark.parametrize(
    ("raw", "reason"),
    [([1, 2, 3], "token-id input"), ([[1, 2], [3]], "token-id input"), ([], "no text input")],
)
def test_inputs_that_cannot_be_embedded_again(raw: Any, reason: str) -> None:
    assert captured_texts({"input": raw}, {}, settings()) == reason


def test_segment_key() -> None:
    assert segment_key({}) == ""
    assert segment_key({"tenant": "acme", "route": "/a"}) == "route=/a,tenant=acme"


def test_bottom_k_keeps_the_k_smallest_keys_in_any_order() -> None:
    keys = [text_key(f"text {i}") for i in range(500)]
    expected = sorted(set(keys))[:20]
    for seed in range(3):
        shuffled = keys * 2  # every key twice: a repeat is not admitted again
        random.Random(seed).shuffle(shuffled)
        sample, admitted = BottomK(20), 0
        for key in shuffled:
            if sample.admits(key):
                admitted += 1
                sample.add(key)
        assert sample.keys() == expected
        # Sent: the k first, then each new smallest; k(1 + ln(n/k)) = 84 expected for n = 500.
        assert 20 < admitted < 160


# -- the whole path ----------------------------------------------------------------------------


def providers(url: str) -> dict[str, ProviderSettings]:
    return {
        name: ProviderSettings(kind=ProviderKind.OPENAI, base_url=url, api_key_env=KEY_ENV)
        for name in ("openai", "local")
    }


def embedding_call(inputs: str | list[str], tenant: str) -> CapturedCall:
    count = 1 if isinstance(inputs, str) else len(inputs)
    return CapturedCall(
        api=Api.OPENAI_EMBEDDINGS,
        segment={"tenant": tenant},
        request={"model": "wordllama-l2", "input": inputs, "encoding_format": "base64"},
        primary=ArmResult(
            provider="openai",
            model="wordllama-l2",
            status_code=200,
            latency_ms=3.0,
            output=Output(embeddings=EmbeddingSummary(count=count, dimensions=256)),
        ),
    )


def traffic() -> list[CapturedCall]:
    """200 calls: 160 queries one at a time (a fifth of them repeats), 40 batches of 5
    documents (some documents in two batches), over two tenants."""
    queries, documents = load(130, 150)
    rng = random.Random(12)
    calls: list[CapturedCall] = []
    for i in range(160):
        text = queries.texts[i] if i < 130 else queries.texts[rng.randrange(130)]
        calls.append(embedding_call(text, "acme" if i % 3 else "globex"))
    for i in range(40):
        batch = [documents.texts[(i * 4 + j) % 150] for j in range(5)]
        calls.append(embedding_call(batch, "acme" if i % 2 else "globex"))
    rng.shuffle(calls)
    return calls


def sent_inputs(fake: OpenAIFake, since: int, model: str) -> list[str]:
    sent: list[str] = []
    for request in list(fake.requests)[since:]:
        body = request.json()
        if request.path == "/v1/embeddings" and body["model"] == model:
            sent.extend(body["input"])
    return sent


def embedding_runner(
    bus: MemoryBus, migration: MigrationSettings, url: str, cache: Path, **settings: Any
) -> Runner:
    """A runner of one migration against the fake at `url`, one attempt a call."""
    return Runner(
        bus=bus,
        topics=TOPICS,
        migrations=[migration],
        providers=providers(url),
        prices=PriceTable(),
        settings=RunnerSettings(embedding_cache=cache, **settings),
        caller=ArmCaller(max_attempts=1),
    )


async def run_runner(bus: MemoryBus, runner: Runner, records: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    calls_log = bus.topic(TOPICS.calls)
    for _ in range(6000):  # until every record is committed
        if calls_log.committed.get("shadowjudge-runner", 0) >= records:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    await runner.close()


async def run_judge(bus: MemoryBus, store: AsyncStore, records: int) -> JudgeWorker:
    worker = JudgeWorker(
        bus=bus,
        topics=TOPICS,
        scorer=Scorer(JudgeSettings(), {}, PriceTable(), None),
        store=store,
        batch_rows=100,
        batch_seconds=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    pairs_log = bus.topic(TOPICS.pairs)
    for _ in range(3000):
        if pairs_log.committed.get("shadowjudge-judge", 0) >= records:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    return worker


K = 12


async def test_traffic_to_reference_rows(
    fake: OpenAIFake,
    served: Served,
    tmp_path: Path,
    chdb_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    calls = traffic()
    migration = MigrationSettings.model_validate(
        {
            "name": "wl-to-e5",
            "match": {"api": ["openai.embeddings"], "model": ["wordllama-l2"]},
            "embeddings": {"reference_size": K, "retention_days": 14},
            "arms": [
                {
                    "name": "e5",
                    "provider": "local",
                    "model": "multilingual-e5-small",
                    "embedding": E5_SIDE,
                }
            ],
        }
    )
    bus = MemoryBus()
    await bus.start()
    for call in calls:
        await bus.send(TOPICS.calls, dump_event(call), key=call.call_id.encode())
    runner = embedding_runner(
        bus, migration, served.url, tmp_path / "cache" / "vectors.sqlite3", max_in_flight=16
    )
    before = len(fake.requests)
    started = time.perf_counter()
    await run_runner(bus, runner, len(calls))
    seconds = time.perf_counter() - started
    assert (tmp_path / "cache" / "vectors.sqlite3").stat().st_mode & 0o077 == 0
    pairs = [parse_shadow_pair(r.value) for r in bus.topic(TOPICS.pairs).log]
    assert len(pairs) == 200 and all(p.result.ok for p in pairs)

    # What the captured calls held, per stratum (tenant, role), and what each model was sent.
    strata: dict[tuple[str, str], set[str]] = {}
    texts: dict[str, str] = {}
    for call in calls:
        assert call.request is not None
        raw = call.request["input"]
        role = "query" if isinstance(raw, str) else "document"
        for text in [raw] if isinstance(raw, str) else raw:
            strata.setdefault((f"tenant={call.segment['tenant']}", role), set()).add(text_key(text))
            texts[text_key(text)] = text
    e5_sent = sent_inputs(fake, before, "multilingual-e5-small")
    wordllama_sent = sent_inputs(fake, before, "wordllama-l2")
    distinct_e5 = {
        ("query: " if role == "query" else "passage: ") + texts[key]
        for (_, role), keys in strata.items()
        for key in keys
    }
    # No text embedded twice for one model: e5 got each (prefixed) text once ...
    assert Counter(e5_sent).most_common(1)[0][1] == 1 and set(e5_sent) == distinct_e5
    assert all(p.result.output and p.result.output.embeddings for p in pairs)
    assert sum(p.result.usage.input_tokens or 0 for p in pairs if p.result.usage) > 0
    # ... and wordllama (the primary) only the reference set's entrants, each once.
    assert Counter(wordllama_sent).most_common(1)[0][1] == 1

    metrics = runner.metrics.registry.get_sample_value
    e5_labels = {"model": "multilingual-e5-small", "version": "multilingual-e5-small"}
    wl_labels = {"model": "wordllama-l2", "version": "wordllama-l2"}
    assert metrics("shadowjudge_embedding_texts_embedded_total", e5_labels) == len(distinct_e5)
    assert metrics("shadowjudge_embedding_cache_misses_total", e5_labels) == len(distinct_e5)
    assert metrics("shadowjudge_embedding_texts_embedded_total", wl_labels) == len(
        set(wordllama_sent)
    )
    e5_texts = sum(p.result.output.embeddings.count for p in pairs if p.result.output and
                   p.result.output.embeddings)  # fmt: skip
    assert metrics("shadowjudge_embedding_cache_hits_total", e5_labels) == e5_texts - len(
        distinct_e5
    )
    assert b"shadowjudge_embedding_cache_hits_total" in runner.metrics.render()

    # The reservoir holds the bottom k of every stratum; the pairs carried no more than sent.
    arms = runner.embedding_arms
    assert arms is not None
    for (segment, role), keys in strata.items():
        sample = arms.reference_set("wl-to-e5", "e5", segment, Role(role))
        assert sample is not None and sample.keys() == sorted(keys)[:K], (segment, role)
    carried = [(p, r) for p in pairs for r in p.reference]
    sent_rows = len(carried)
    # Never the same text twice from one runner, even from pairs in flight together.
    assert len({(r.segment_key, r.role, r.text_hash) for _, r in carried}) == sent_rows
    reservoir = K * len(strata)
    assert (
        reservoir
        <= sent_rows
        == metrics(
            "shadowjudge_runner_embedding_reference_texts_total",
            {"migration": "wl-to-e5", "arm": "e5"},
        )
    )
    for pair, reference in carried:
        assert len(decode_vector(reference.primary_vector)) == 256
        assert len(decode_vector(reference.candidate_vector)) == 384
        assert reference.retention_days == 14
        assert reference.segment_key == f"tenant={pair.call.segment['tenant']}"
        assert text_key(reference.text) == reference.text_hash
    # A reference vector is the model's vector of the text with the arm's prefix.
    pair, reference = next((p, r) for p, r in carried if r.role == "query")
    vector = np.asarray(decode_vector(reference.candidate_vector))
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5

    # The judge: every carried text becomes a row; a replayed pair adds none.
    store = await AsyncStore.open(StoreSettings(url=new_url(chdb_dir, "e")))
    try:
        await store.migrate()
        worker = await run_judge(bus, store, len(pairs))
        count = "SELECT count() AS n FROM embedding_reference FINAL"
        assert (await store.run(store.store.select, count))[0]["n"] == sent_rows
        samples = worker.metrics.registry.get_sample_value
        labels = {"migration": "wl-to-e5", "arm": "e5"}
        assert samples("shadowjudge_judge_embedding_reference_rows_total", labels) == sent_rows
        replayed = next(p for p in pairs if p.reference)
        await bus.send(TOPICS.pairs, dump_event(replayed), key=replayed.call.call_id.encode())
        await run_judge(bus, store, len(pairs) + 1)
        assert (await store.run(store.store.select, count))[0]["n"] == sent_rows
        bottom = await store.run(
            store.store.select,
            "SELECT role, segment_key, groupArray(text_hash) AS keys FROM ("
            " SELECT role, segment_key, text_hash FROM embedding_reference FINAL"
            " WHERE migration = 'wl-to-e5' AND arm = 'e5'"
            " ORDER BY role, segment_key, text_hash LIMIT 12 BY role, segment_key)"
            " GROUP BY role, segment_key",
        )
        assert {(r["segment_key"], r["role"]): r["keys"] for r in bottom} == {
            stratum: sorted(keys)[:K] for stratum, keys in strata.items()
        }
        widths = await store.run(
            store.store.select,
            "SELECT DISTINCT length(primary_vector) AS p, length(candidate_vector) AS c"
            " FROM embedding_reference",
        )
        assert widths == [{"p": 256, "c": 384}]
    finally:
        await store.run(drop_database, store.store)
        await store.close()
    texts_per_s = e5_texts / seconds
    log.info(
        f"200 calls, {e5_texts} texts ({len(distinct_e5)} distinct for e5,"
        f" {len(set(wordllama_sent))} for wordllama) in {seconds:.1f} s ({texts_per_s:.0f}"
        f" texts/s); reference rows sent {sent_rows}, reservoir {reservoir}"
    )


async def test_token_ids_are_skipped_with_the_reason(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = MigrationSettings.model_validate(
        {
            "name": "m",
            "embeddings": {},
            "arms": [{"name": "wl", "provider": "local", "model": "wordllama-l2"}],
        }
    )
    bus = MemoryBus()
    await bus.start()
    call = embedding_call("x", "acme").model_copy(
        update={"request": {"model": "wordllama-l2", "input": [[101, 2023], [101]]}}
    )
    chat = CapturedCall(
        api=Api.OPENAI_CHAT,
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        primary=ArmResult(provider="openai", model="gpt-4o", status_code=200, latency_ms=1),
    )
    for event in (call, chat):
        await bus.send(TOPICS.calls, dump_event(event))
    runner = embedding_runner(bus, migration, served.url, tmp_path / "c.sqlite3")
    await run_runner(bus, runner, 2)
    (pair,) = [parse_shadow_pair(r.value) for r in bus.topic(TOPICS.pairs).log]  # no chat pair
    assert pair.result.error is not None and pair.result.error.kind is ErrorKind.SKIPPED
    assert pair.result.error.message == "token-id input" and pair.reference == ()
    skipped = runner.metrics.registry.get_sample_value
    assert skipped("shadowjudge_runner_skipped_total", {"reason": "token-id input"}) == 1
    assert b'"reference"' not in dump_event(pair)
    assert isinstance(pair, ShadowPair) and orjson.loads(dump_event(pair))["arm"]["name"] == "wl"


# -- one arm, directly -------------------------------------------------------------------------


def wordllama_migration(**embeddings: Any) -> MigrationSettings:
    return MigrationSettings.model_validate(
        {
            "name": "m",
            "embeddings": embeddings,
            "arms": [
                {
                    "name": "short",
                    "provider": "local",
                    "model": "wordllama-l2",
                    "embedding": {"dimensions": 64, "version": "short"},
                }
            ],
        }
    )


def arms_for(url: str, tmp_path: Path, max_reference_bytes: int | None) -> EmbeddingArms:
    return EmbeddingArms(
        providers=providers(url),
        limiters={},
        prices=PriceTable(),
        metrics=RunnerMetrics(),
        cache=EmbeddingCache.open(tmp_path / "cache.sqlite3"),
        timeout_s=30,
        max_attempts=1,
        max_reference_bytes=max_reference_bytes,
    )


DOCUMENTS = [f"Document {i}: how the {w} module reads files." for i, w in enumerate("abcdef")]


async def test_reference_texts_past_the_size_budget_wait_for_a_later_call(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = wordllama_migration(reference_size=4)
    (arm,) = migration.arms
    arms = arms_for(served.url, tmp_path, max_reference_bytes=3_000)  # one text's worth
    call = embedding_call(DOCUMENTS, "acme")
    try:
        result, reference = await arms.run(call, migration, arm, SpendCap(None))
        assert result.ok and result.output is not None and result.output.embeddings is not None
        assert result.output.embeddings.dimensions == 64 and result.output.embeddings.count == 6
        assert len(reference) == 1
        (first,) = reference
        assert len(decode_vector(first.primary_vector)) == 256  # the primary's own width
        assert len(decode_vector(first.candidate_vector)) == 64
        assert first.candidate_version == "short" and first.primary_version == "wordllama-l2"
        left_out = arms_metrics(arms)
        admitted, entrants = BottomK(4), 0  # the call's texts admitted in their order
        for key in (text_key(d) for d in DOCUMENTS):
            if admitted.admits(key):
                admitted.add(key)
                entrants += 1
        assert entrants >= 4
        assert left_out("message size") == entrants - 1
        # The same call again: the next smallest key goes, the first is not sent twice.
        _, again = await arms.run(call, migration, arm, SpendCap(None))
        assert len(again) == 1 and again[0].text_hash > first.text_hash
        sample = arms.reference_set("m", "short", "tenant=acme", Role.DOCUMENT)
        assert sample is not None
        assert sample.keys() == sorted(text_key(d) for d in DOCUMENTS)[:2]
    finally:
        await arms.close()


async def test_input_types_go_to_each_side_as_it_is_called(
    fake: OpenAIFake, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The arm sends its own `input_type` per role; the primary's reference vectors are asked
    with the app's own (the captured request's), so they are the vectors the app got."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = MigrationSettings.model_validate(
        {
            "name": "m",
            "embeddings": {},
            "arms": [
                {"name": "typed", "provider": "local", "model": "wordllama-l2",
                 "embedding": {"dimensions": 64, "query_input_type": "search_query",
                               "document_input_type": "search_document"}},
            ],
        }
    )  # fmt: skip
    (arm,) = migration.arms
    arms = arms_for(served.url, tmp_path, max_reference_bytes=None)
    call = embedding_call(DOCUMENTS[:3], "acme")
    assert call.request is not None
    call = call.model_copy(update={"request": {**call.request, "input_type": "passage"}})
    before = len(fake.requests)
    try:
        result, reference = await arms.run(call, migration, arm, SpendCap(None))
        assert result.ok and len(reference) == 3
        assert {r.role for r in reference} == {"document"}
        bodies = [r.json() for r in list(fake.requests)[before:] if r.path == "/v1/embeddings"]
        asked = {(b.get("dimensions"), b.get("input_type"), len(b["input"])) for b in bodies}
        assert asked == {(None, "passage", 3), (64, "search_document", 3)} and len(bodies) == 2
        # Again: every vector is cached under its input type, nothing is sent.
        again = len(fake.requests)
        result, _ = await arms.run(call, migration, arm, SpendCap(None))
        assert result.ok and len(fake.requests) == again
    finally:
        await arms.close()


def arms_metrics(arms: EmbeddingArms) -> Any:
    registry = arms._metrics.registry

    def left_out(reason: str) -> float | None:
        return registry.get_sample_value(
            "shadowjudge_runner_embedding_reference_left_out_total",
            {"migration": "m", "arm": "short", "reason": reason},
        )

    return left_out


async def test_a_primary_that_cannot_be_asked_leaves_the_reference_set_alone(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = wordllama_migration()
    (arm,) = migration.arms
    arms = arms_for(served.url, tmp_path, max_reference_bytes=None)
    call = embedding_call(DOCUMENTS[:2], "acme")
    elsewhere = call.model_copy(
        update={"primary": call.primary.model_copy(update={"provider": "nowhere"})}
    )
    try:
        result, reference = await arms.run(elsewhere, migration, arm, SpendCap(None))
        assert result.ok and reference == ()
        assert arms_metrics(arms)("primary failed") == 2
        sample = arms.reference_set("m", "short", "tenant=acme", Role.DOCUMENT)
        assert sample is not None and len(sample) == 0  # a later call may still send them
    finally:
        await arms.close()


async def test_a_refused_candidate_is_the_pairs_error(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = MigrationSettings.model_validate(
        {
            "name": "m",
            "embeddings": {},
            # e5 without its prefixes: the fake refuses, as the model would misbehave
            "arms": [{"name": "e5", "provider": "local", "model": "multilingual-e5-small"}],
        }
    )
    (arm,) = migration.arms
    arms = arms_for(served.url, tmp_path, max_reference_bytes=None)
    try:
        result, reference = await arms.run(
            embedding_call("a query", "acme"), migration, arm, SpendCap(1.0)
        )
        assert reference == ()
        assert result.error is not None and result.error.kind is ErrorKind.HTTP
        assert result.status_code == 400 and "HTTP 400" in result.error.message
    finally:
        await arms.close()


async def test_the_spend_cap_holds_embedding_arms_and_books_what_they_cost(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = wordllama_migration().model_copy(update={"daily_spend_usd": 0.01})
    (arm,) = migration.arms
    arms = arms_for(served.url, tmp_path, max_reference_bytes=None)
    arms._prices = PriceTable({"wordllama-l2": Price(input=100.0, output=0.0)})  # $100/M tokens
    cap = SpendCap(0.01)
    try:
        result, reference = await arms.run(
            embedding_call(DOCUMENTS[:2], "acme"), migration, arm, cap
        )
        assert result.ok and result.usage is not None and result.usage.input_tokens
        # Both the candidate's texts and the primary's reference vectors are booked.
        assert len(reference) == 2
        assert cap.spent > result.usage.input_tokens * 100 / 1e6
        # A call the rest of the day's budget cannot cover is skipped, and counted.
        big = embedding_call([f"{d} " * 400 for d in DOCUMENTS], "acme")
        skipped, none = await arms.run(big, migration, arm, cap)
        assert none == () and skipped.error is not None
        assert skipped.error.kind is ErrorKind.SKIPPED
        assert skipped.error.message == "daily spend cap reached"
        # All from the cache: nothing billed, the pair's usage says 0 tokens.
        again, _ = await arms.run(embedding_call(DOCUMENTS[:2], "acme"), migration, arm, cap)
        assert again.ok and again.usage is not None and again.usage.input_tokens == 0
    finally:
        await arms.close()


class LimitedBus(MemoryBus):
    """A memory bus with a broker's message limit."""

    @property
    def max_message_bytes(self) -> int | None:
        return 200_000


async def test_a_large_batch_fits_the_bus_limit_and_its_other_texts_wait(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    _, documents = load(1, 300)
    migration = wordllama_migration(reference_size=5000)
    bus = LimitedBus()
    await bus.start()
    await bus.send(TOPICS.calls, dump_event(embedding_call(list(documents.texts), "acme")))
    runner = embedding_runner(bus, migration, served.url, tmp_path / "c.sqlite3")
    await run_runner(bus, runner, 1)
    (record,) = bus.topic(TOPICS.pairs).log
    assert len(record.value) <= 200_000
    pair = parse_shadow_pair(record.value)
    assert pair.result.ok and 10 < len(pair.reference) < 300
    assert not pair.call.truncated.bus  # the references took at most half the message
    left_out = runner.metrics.registry.get_sample_value(
        "shadowjudge_runner_embedding_reference_left_out_total",
        {"migration": "m", "arm": "short", "reason": "message size"},
    )
    assert left_out == 300 - len(pair.reference)
    sent = sorted(r.text_hash for r in pair.reference)
    assert sent == sorted(text_key(t) for t in documents.texts)[: len(sent)]  # smallest first


async def test_a_long_running_runner_deletes_old_vectors_daily(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = wordllama_migration(reference_size=1)
    (arm,) = migration.arms
    now = [time.time()]
    arms = arms_for(served.url, tmp_path, max_reference_bytes=None)
    arms._cache.close()
    arms._cache = cache = EmbeddingCache.open(
        tmp_path / "aged.sqlite3", max_age_days=1, clock=lambda: now[0]
    )
    arms.embeddings.cache = cache
    call = embedding_call(DOCUMENTS, "acme")
    try:
        await arms.run(call, migration, arm, SpendCap(None))
        assert len(cache) == 7  # 6 texts at 64 dimensions, 1 reference text at 256
        now[0] += 2 * 86_400  # two days on: every vector is past its age ...
        await arms.run(call, migration, arm, SpendCap(None))
        assert len(cache) == 7  # ... but not pruned yet: found in the cache again
        monkeypatch.setattr(arms, "_pruned_at", time.monotonic() - PRUNE_EVERY_S)
        result, _ = await arms.run(call, migration, arm, SpendCap(None))
        assert result.usage is not None and result.usage.input_tokens  # embedded again
    finally:
        await arms.close()


def test_a_cache_path_the_runner_cannot_open_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = blocker / "cache.sqlite3"
    with pytest.raises(ConfigError) as caught:
        embedding_runner(MemoryBus(), wordllama_migration(), "http://127.0.0.1:9", path)
    assert str(caught.value).startswith(f"runner.embedding_cache: {path}: cannot open")


async def test_segment_keys_past_max_strata_share_one_stratum(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A segment label with a value per user cannot grow the runner's sample sets: past
    `max_strata` segment keys, the calls of new keys are sampled together."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    migration = wordllama_migration(reference_size=3, max_strata=2)
    (arm,) = migration.arms
    arms = arms_for(served.url, tmp_path, max_reference_bytes=None)
    try:
        for i, tenant in enumerate(["a", "b", "c", "d", "a"]):
            _, reference = await arms.run(
                embedding_call(f"question {i} about files", tenant), migration, arm, SpendCap(None)
            )
            expected = f"tenant={tenant}" if tenant in "ab" else OTHER_STRATUM
            assert [r.segment_key for r in reference] == [expected]
        for stratum, texts in (("tenant=a", 2), ("tenant=b", 1), (OTHER_STRATUM, 2)):
            sample = arms.reference_set("m", "short", stratum, Role.QUERY)
            assert sample is not None and len(sample.keys()) == texts, stratum
        assert arms.reference_set("m", "short", "tenant=c", Role.QUERY) is None
        warned = [r.getMessage() for r in caplog.records if "max_strata" in r.getMessage()]
        assert len(warned) == 1 and "more than 2 segment keys" in warned[0]
    finally:
        await arms.close()
