"""From captured `/v1/embeddings` calls to a verdict, every part real: the runner's embedding
arm (wordllama-l2 -> multilingual-e5-small through the fake endpoint and the embedding cache)
on the memory bus, the judge writing the reference rows to chDB, then the report reading them.
The vectors that went through the pair's base64, the judge and the store are the models' own
vectors of those texts, with the arm's prefixes; the report is the one built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai
import pytest

from dashboards.analysis import embedding_report
from dashboards.analysis.embedding_migration import EmbeddingMigration, traffic_report
from dashboards.analysis.embedding_reference import read_reference
from judge.config import StoreSettings
from judge.store.store import AsyncStore
from mirror.bus.memory import MemoryBus
from mirror.events import dump_event
from mirror.migrations import MigrationSettings
from simulation.providers import Served
from tests.chdb import drop_database, new_url
from tests.dashboards.embedding_traffic import text_hash
from tests.mirror.runner.test_embedding_arm import (
    E5_SIDE,
    KEY_ENV,
    TOPICS,
    embedding_runner,
    run_judge,
    run_runner,
    traffic,
)

PER_STRATUM = 12
STRATA = 4  # two tenants × query, document


@pytest.mark.timeout(300)
async def test_captured_calls_to_a_verdict(
    served: Served, tmp_path: Path, chdb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    calls = traffic()  # 200 calls: queries one at a time, batches of documents, two tenants
    settings = MigrationSettings.model_validate(
        {
            "name": "wl-to-e5",
            "match": {"api": ["openai.embeddings"], "model": ["wordllama-l2"]},
            "embeddings": {"reference_size": PER_STRATUM * STRATA, "thresholds": [0.5]},
            "arms": [
                {"name": "e5", "provider": "local", "model": "multilingual-e5-small",
                 "embedding": E5_SIDE},
            ],
        }
    )  # fmt: skip
    bus = MemoryBus()
    await bus.start()
    for call in calls:
        await bus.send(TOPICS.calls, dump_event(call), key=call.call_id.encode())
    runner = embedding_runner(
        bus, settings, served.url, tmp_path / "cache.sqlite3", max_in_flight=16
    )
    await run_runner(bus, runner, len(calls))
    store = await AsyncStore.open(StoreSettings(url=new_url(chdb_dir, "e")))
    try:
        await store.migrate()
        await run_judge(bus, store, len(calls))
        migration = EmbeddingMigration.from_settings(settings)
        assert migration is not None
        found = await store.run(
            read_reference, store.store, "wl-to-e5", "e5", size=48, retention_days=30
        )
        report, overlap = await store.run(traffic_report, store.store, migration, "e5")
    finally:
        await store.run(drop_database, store.store)
        await store.close()

    # the bottom 12 keys of each stratum of what the app sent, split equally
    captured: dict[tuple[str, str], set[str]] = {}
    for call in calls:
        assert call.request is not None
        raw = call.request["input"]
        role = "query" if isinstance(raw, str) else "document"
        for text in [raw] if isinstance(raw, str) else raw:
            captured.setdefault((role, f"tenant={call.segment['tenant']}"), set()).add(text)
    assert {(s.role, s.segment_key): s.taken for s in found.strata} == dict.fromkeys(
        captured, PER_STRATUM
    )
    for (role, segment), texts in captured.items():
        rows = found.queries if role == "query" else found.documents
        mine = [h for h, s in zip(rows.hashes, rows.segments, strict=True) if s == segment]
        assert mine == sorted(text_hash(t) for t in texts)[:PER_STRATUM], (role, segment)

    # the stored vectors are the models' own, with the arm's prefixes for e5
    with openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-test", timeout=300) as client:

        def vectors(model: str, texts: list[str], prefix: str) -> np.ndarray:
            answer = client.embeddings.create(model=model, input=[prefix + t for t in texts])
            return np.asarray([d.embedding for d in answer.data], dtype=np.float32)

        for rows, prefix in ((found.queries, "query: "), (found.documents, "passage: ")):
            assert np.allclose(rows.primary, vectors("wordllama-l2", rows.texts, ""), atol=1e-5)
            e5 = vectors("multilingual-e5-small", rows.texts, prefix)
            assert np.allclose(rows.candidate, e5, atol=1e-5)

    # the report is the builder's over exactly those rows
    assert report["queries"] == report["documents"] == 2 * PER_STRATUM
    assert report["from"] == "wordllama-l2@wordllama-l2"
    assert report["to"] == "multilingual-e5-small@multilingual-e5-small"
    direct, _ = embedding_report.build(
        embedding_report.ReportInput(
            "old", "new", found.queries.hashes, found.queries.texts,
            found.queries.primary, found.queries.candidate, found.queries.segments,
            found.documents.hashes, found.documents.texts,
            found.documents.primary, found.documents.candidate,
        ),
        cutoffs=(0.5,),
    )  # fmt: skip
    assert report["agreement"]["overlap"] == direct["agreement"]["overlap"]
    assert report["thresholds"] == direct["thresholds"]
    assert overlap is not None and report["verdict"] == embedding_report.verdict(overlap, None)
    assert any("a corpus of 24 texts" in note for note in report["notes"])
