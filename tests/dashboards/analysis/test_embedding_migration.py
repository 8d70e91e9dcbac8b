"""An embedding migration's report from the reference set in a real chDB store, the rows built
from the offline models' vectors: a same-family pair (multilingual-e5-small -> its enpt
fine-tune) and a cross-family pair (wordllama-l2 -> multilingual-e5-small) on 60 queries × 200
documents of the embedding corpus, with its two segments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards.analysis import embedding_report
from dashboards.analysis.embedding_migration import (
    MIN_QUERIES,
    EmbeddingMigration,
    traffic_report,
)
from judge.config import JudgeSettings
from judge.scoring import Scorer
from judge.store.store import Store
from mirror.events import (
    Api,
    Arm,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    ShadowPair,
    new_call_id,
)
from mirror.pricing import PriceTable
from tests.dashboards.embedding_traffic import (
    OfflineVectors,
    migration_rows,
    reference_store,
    synthetic_rows,
    text_hash,
)
from tests.judge.embeddings.corpus import E5, E5_ENPT, WORDLLAMA

SAME = EmbeddingMigration("same", ("enpt",), thresholds=(0.85,))
CROSS = EmbeddingMigration("cross", ("e5",), thresholds=(0.5, 0.75))
QUERIES_ONLY = EmbeddingMigration("queries-only", ("e5",))
FEW = EmbeddingMigration("few", ("e5",))


@pytest.fixture(scope="module")
def store(chdb_dir: Path, offline_vectors: OfflineVectors) -> Iterator[Store]:
    rows = [
        *migration_rows(offline_vectors, "same", "enpt", E5, E5_ENPT),
        *migration_rows(offline_vectors, "cross", "e5", WORDLLAMA, E5),
        *migration_rows(offline_vectors, "queries-only", "e5", WORDLLAMA, E5, documents=False),
        *migration_rows(offline_vectors, "few", "e5", WORDLLAMA, E5, queries=MIN_QUERIES - 1),
    ]
    with reference_store(chdb_dir, rows) as opened:
        yield opened


def test_same_family_is_safe(store: Store) -> None:
    report, overlap = traffic_report(store, SAME, "enpt")
    assert report["verdict"]["verdict"] == "safe", report["verdict"]
    assert overlap is not None and overlap.mean > 0.8
    assert report["from"] == f"{E5}@{E5}" and report["to"] == f"{E5_ENPT}@{E5_ENPT}"
    assert (report["queries"], report["documents"], report["corpus"]) == (60, 200, "documents")
    assert report["reference"]["taken"] == report["reference"]["available"] == 260
    (mapped,) = report["thresholds"]
    # two versions of one model: the cut-off barely moves and passes about as much as before
    assert abs(mapped["new"] - 0.85) < 0.02
    assert abs(mapped["pass_after"] - mapped["pass_before"]) < 0.02


def test_cross_family_needs_re_embedding_with_figures_per_segment(
    store: Store, offline_vectors: OfflineVectors
) -> None:
    report, overlap = traffic_report(store, CROSS, "e5", least=3)
    assert report["verdict"]["verdict"] == "re-embed and retune", report["verdict"]
    assert overlap is not None and overlap.high <= 0.45
    segments = report["agreement"]["segments"]
    assert set(segments) == {"area=library", "area=reference"}
    by_segment = {
        label: sum(s == label.removeprefix("area=") for s in offline_vectors.queries.segments)
        for label in segments
    }
    assert {label: s["overlap"]["n"] for label, s in segments.items()} == by_segment
    strata = {(s["role"], s["segment_key"]): s["taken"] for s in report["reference"]["strata"]}
    assert sum(v for (role, _), v in strata.items() if role == "query") == 60
    # the same texts and vectors as `embeddings compare` reads from files: the same figure (the
    # reader's rows come back in text-hash order, so only the mean is order-free)
    (oq, od), (nq, nd) = offline_vectors.vectors[WORDLLAMA], offline_vectors.vectors[E5]
    q, d = offline_vectors.queries, offline_vectors.documents
    direct, _ = embedding_report.build(
        embedding_report.ReportInput(
            WORDLLAMA, E5, q.ids, q.texts, oq, nq, q.segments, d.ids, d.texts, od, nd
        )
    )
    assert report["agreement"]["overlap"]["mean"] == direct["agreement"]["overlap"]["mean"]
    # thresholds: quantile matching keeps the share of neighbour scores passing; unchanged,
    # e5's high cosines pass nearly all of them
    rows = {t["old"]: t for t in report["thresholds"]}
    assert set(rows) == {0.5, 0.75}
    assert abs(rows[0.5]["pass_after"] - rows[0.5]["pass_before"]) < 0.01
    assert rows[0.5]["new"] > 0.75 and rows[0.5]["pass_unchanged"] > 0.95
    assert rows[0.75]["new"] > rows[0.5]["new"]
    least = report["least_agreeing"]
    assert len(least) == 3 and all(len(i["old"]) == len(i["new"]) == 10 for i in least)
    documents = {text_hash(t)[:12] for t in d.texts}
    assert all(n["id"] in documents for i in least for n in i["old"] + i["new"])
    assert "fewer than 2,000 pairs" in report["adapter"]["reason"]
    # vectors never leave the builder: no vector column, nothing the size of 260 × 640 floats
    dumped = json.dumps(report)
    assert "_vector" not in dumped and len(dumped) < 50_000


def test_without_documents_the_queries_are_their_own_corpus(store: Store) -> None:
    report, _ = traffic_report(store, QUERIES_ONLY, "e5")
    assert (report["queries"], report["documents"], report["corpus"]) == (60, 0, "queries")
    assert any("each query's neighbours are its nearest other texts" in n for n in report["notes"])
    assert "a corpus of 59 texts: two unrelated rankings share 16.9% of their top 10" in str(
        report["notes"]
    )
    assert report["verdict"]["verdict"] in ("re-embed and retune", "investigate")
    for item in report["least_agreeing"]:
        ids = [n["id"] for n in item["old"] + item["new"]]
        assert item["query_id"] not in ids  # never its own neighbour


def test_too_few_queries_say_how_many_and_what_is_needed(store: Store) -> None:
    report, overlap = traffic_report(store, FEW, "e5")
    assert overlap is None and report["verdict"] is None
    assert report["insufficient"].startswith(f"{MIN_QUERIES - 1} query texts")
    assert f"at least {MIN_QUERIES} are needed" in report["insufficient"]
    assert "agreement" not in report
    empty, _ = traffic_report(store, FEW, "nothing-stored")
    assert empty["insufficient"].startswith("0 query texts") and empty["reference"]["strata"] == []


@pytest.mark.parametrize(("queries", "documents"), [(100, 2100), (2600, 0)])
def test_adapter_retention_is_measured_from_2000_pairs(
    chdb_dir: Path, queries: int, documents: int
) -> None:
    migration = EmbeddingMigration("rotated", ("b",))
    with reference_store(chdb_dir, synthetic_rows("rotated", queries, documents)) as opened:
        report, _ = traffic_report(opened, migration, "b")
    adapter = report["adapter"]
    assert adapter["measured"], adapter
    held = round(0.2 * queries)
    assert adapter["train_pairs"] == queries + documents - held
    for kind in ("ridge", "procrustes"):
        assert adapter[kind]["held_out_queries"] == held
        assert adapter[kind]["retention"]["mean"] > 0.8  # a rotation maps back
    assert report["corpus"] == ("documents" if documents else "queries")


async def test_an_empty_reference_set_says_why_when_the_arms_calls_fail(store: Store) -> None:
    """Every call to the candidate failed (a missing key, say): the report says so, with the
    latest failure, instead of only "0 query texts"."""
    call = CapturedCall(
        api=Api.OPENAI_EMBEDDINGS,
        request={"model": WORDLLAMA, "input": "how do I open a file"},
        primary=ArmResult(provider="openai", model=WORDLLAMA, status_code=200, latency_ms=3),
    )
    refused = ArmResult(
        provider="openai",
        model=E5,
        status_code=401,
        latency_ms=2,
        error=ErrorInfo(kind=ErrorKind.HTTP, message="401: missing API key"),
    )
    pairs = [
        ShadowPair(call=call, migration="failing", arm=Arm(name="e5"), result=refused),
        ShadowPair(
            call=call.model_copy(update={"call_id": new_call_id()}),
            migration="failing",
            arm=Arm(name="e5"),
            result=refused,
        ),
    ]
    async with Scorer(JudgeSettings(), {}, PriceTable(), None) as scorer:
        comparisons = await scorer.score_many(pairs)
    store.insert_pairs(pairs, comparisons)
    report, _ = traffic_report(store, EmbeddingMigration("failing", ("e5",)), "e5")
    assert report["replays"] == {
        "days": 30,
        "pairs": 2,
        "failed": 2,
        "latest_error": {"kind": "http", "message": "401: missing API key"},
    }
    assert report["insufficient"].endswith(
        "; 2 of the arm's 2 replayed calls failed in the last 30 days"
        " (latest: http: 401: missing API key)"
    )
    healthy, _ = traffic_report(store, SAME, "enpt")
    assert healthy["replays"]["failed"] == 0
    assert not any("failed" in note for note in healthy["notes"])
