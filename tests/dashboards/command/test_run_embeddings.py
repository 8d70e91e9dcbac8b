"""`shadowjudge run` with an embedding migration: the app's `/v1/embeddings` calls through the
sidecar reach the runner's embedding arm, the embedding cache's counters are on the run's one
`/metrics` (the sidecar's port, the runner's registry relayed to it), each text is embedded once
per model however often the app sends it, and the report's API answers from the stored
reference set.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx2
import openai
from prometheus_client.parser import text_string_to_metric_families

from mirror.events import SHADOW_TRAFFIC_HEADER
from simulation.providers import openai_app, serve
from tests.broker import free_port, wait_for_port
from tests.dashboards.command.test_run import shadowjudge

PRIMARY, CANDIDATE = "text-embedding-3-small", "text-embedding-3-large"
WIDTH = 64

CONFIG = """
providers:
  openai: {{kind: openai, base_url: "{openai}", api_key_env: SJ_E2E_OPENAI}}
sidecar: {{listen: "127.0.0.1:{port}"}}
dashboards: {{listen: "127.0.0.1:{pages}"}}
store: {{url: "chdb://{store}", batch_rows: 50, batch_seconds: 0.2}}
judge: {{metrics_listen: null}}
runner: {{metrics_listen: null, embedding_cache: "{cache}"}}
migrations:
  - name: search
    match: {{api: [openai.embeddings], model: [{primary}]}}
    embeddings: {{reference_size: 1000}}
    arms:
      - {{name: large, provider: openai, model: {candidate}, embedding: {{dimensions: {width}}}}}
"""

QUERIES = [f"how do I configure feature {i}?" for i in range(15)]
DOCUMENTS = [[f"feature {b * 4 + j} is configured in settings.yaml" for j in range(4)]
             for b in range(6)]  # fmt: skip
# Every query twice, the first two batches of documents again: repeats the cache must absorb.
CALLS: list[str | list[str]] = [*QUERIES, *DOCUMENTS, *QUERIES, *DOCUMENTS[:2]]
DISTINCT = len(QUERIES) + sum(len(batch) for batch in DOCUMENTS)


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on `url`'s /metrics by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(httpx2.get(url + "/metrics").text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def model_labels(model: str) -> tuple[tuple[str, str], ...]:
    return (("model", model), ("version", model))


async def test_the_runs_metrics_count_each_text_embedded_once_per_model(tmp_path: Path) -> None:
    fake = openai_app()
    with serve(fake) as provider:
        port, pages = free_port(), free_port()
        config = tmp_path / "shadowjudge.yaml"
        config.write_text(
            CONFIG.format(
                openai=provider.url,
                port=port,
                pages=pages,
                store=tmp_path / "store",
                cache=tmp_path / "cache.sqlite3",
                primary=PRIMARY,
                candidate=CANDIDATE,
                width=WIDTH,
            )
        )
        env = {**os.environ, "SJ_E2E_OPENAI": "sk-e2e-o"}
        process = await shadowjudge(config, "--log-level", "WARNING", "run", env=env)
        try:
            await asyncio.to_thread(wait_for_port, port, 30)
            sidecar = f"http://127.0.0.1:{port}"
            async with openai.AsyncOpenAI(
                base_url=sidecar + "/v1", api_key="sk-app", max_retries=0
            ) as client:
                for texts in CALLS:
                    answer = await client.embeddings.create(
                        model=PRIMARY, input=texts, dimensions=WIDTH
                    )
                    assert len(answer.data) == (1 if isinstance(texts, str) else len(texts))
            key = ("shadowjudge_judge_written_total", ())
            deadline = time.monotonic() + 60
            while (await asyncio.to_thread(samples, sidecar)).get(key, 0) < len(CALLS):
                assert time.monotonic() < deadline, "the pairs were not written in time"
                await asyncio.sleep(0.2)
            seen = await asyncio.to_thread(samples, sidecar)
            report = httpx2.get(
                f"http://127.0.0.1:{pages}/api/v1/migrations/search/embeddings", timeout=60
            )
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 60) == 0

    sent = len(QUERIES) * 2 + sum(len(batch) for batch in DOCUMENTS + DOCUMENTS[:2])
    candidate, primary = model_labels(CANDIDATE), model_labels(PRIMARY)
    # The candidate embeds every distinct text once; the rest are cache hits, a rate on /metrics.
    assert seen[("shadowjudge_embedding_texts_embedded_total", candidate)] == DISTINCT
    assert seen[("shadowjudge_embedding_cache_misses_total", candidate)] == DISTINCT
    assert seen[("shadowjudge_embedding_cache_hits_total", candidate)] == sent - DISTINCT
    # The primary is asked again only for the reference set's texts (all of them here), once.
    assert seen[("shadowjudge_embedding_texts_embedded_total", primary)] == DISTINCT
    # What the provider received from the runner (the shadow marker's calls): each text once
    # per model.
    shadowed: dict[str, list[str]] = {PRIMARY: [], CANDIDATE: []}
    for request in fake.requests:
        if request.path == "/v1/embeddings" and request.header(SHADOW_TRAFFIC_HEADER):
            body = request.json()
            inputs = body["input"]
            shadowed[body["model"]] += [inputs] if isinstance(inputs, str) else inputs
    for model, texts in shadowed.items():
        assert len(texts) == len(set(texts)) == DISTINCT, model
    # The report's API reads the reference rows the judge stored from those pairs.
    assert report.status_code == 200, report.text
    found = report.json()
    assert (found["queries"], found["documents"]) == (len(QUERIES), DISTINCT - len(QUERIES))
    assert found["from"] == f"{PRIMARY}@{PRIMARY}" and found["to"] == f"{CANDIDATE}@{CANDIDATE}"
