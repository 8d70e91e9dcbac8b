"""An embedding migration's page and its API over a chDB store of reference rows (the offline
models' vectors, wordllama-l2 -> multilingual-e5-small): through the ASGI app, then in the real
headless browser — the verdict, the charts, both neighbour lists, a `<script>` from traffic
shown as text, nothing loaded from outside, no vector anywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from starlette.testclient import TestClient

from dashboards.analysis.embedding_migration import EmbeddingMigration
from dashboards.web import embedding_pages
from dashboards.web.app import WebConfig, create_app
from judge.store.store import Store
from tests.browser import chrome, screenshot, serve
from tests.dashboards.embedding_traffic import (
    OfflineVectors,
    migration_rows,
    reference_store,
    synthetic_rows,
    text_hash,
)
from tests.judge.embeddings.corpus import E5, WORDLLAMA

HOSTILE = "<script>window.__pwned = 1</script> how do I read a file?"
MIGRATION = EmbeddingMigration("cross", ("e5", "other"), thresholds=(0.5, 0.75))


@pytest.fixture(scope="module")
def store(chdb_dir: Path, offline_vectors: OfflineVectors) -> Iterator[Store]:
    rows = migration_rows(offline_vectors, "cross", "e5", WORDLLAMA, E5)
    first = rows[0]  # a query: its text from traffic carries markup, as a document too
    hostile = replace(first, text=HOSTILE, text_hash=text_hash(HOSTILE))
    as_document = replace(hostile, role="document")
    with reference_store(chdb_dir, [hostile, as_document, *rows[1:]]) as opened:
        yield opened


def app(store: Store) -> TestClient:
    config = WebConfig(embeddings={"cross": MIGRATION})
    return TestClient(create_app(lambda: store, config))  # type: ignore[arg-type, return-value]


def test_the_api_is_the_report_without_vectors(store: Store) -> None:
    client = app(store)
    answer = client.get("/api/v1/migrations/cross/embeddings", params={"least": 3})
    assert answer.status_code == 200
    found = answer.json()
    assert found["verdict"]["verdict"] == "re-embed and retune"
    assert (found["queries"], found["documents"]) == (60, 201)
    assert len(found["least_agreeing"]) == 3
    assert "_vector" not in answer.text and len(answer.content) < 60_000
    assert client.get("/api/v1/migrations/cross/embeddings?arm=other").json()["queries"] == 0
    for path, status, error in [
        ("/api/v1/migrations/chat/embeddings", 404, "not an embedding migration"),
        ("/api/v1/migrations/cross/embeddings?arm=b", 400, "has no arm 'b'; its arms: e5, other"),
        ("/api/v1/migrations/cross/embeddings?least=0", 400, "least 0: expected 1 to 100"),
        (
            "/api/v1/migrations/cross/embeddings/adapter.npz",
            409,
            "no adapter for cross/e5: fewer than 2,000 pairs",
        ),
    ]:
        refused = client.get(path)
        assert refused.status_code == status and error in refused.json()["error"], path


def test_the_page_escapes_texts_from_traffic(store: Store) -> None:
    client = app(store)
    page = client.get("/migrations/cross/embeddings", params={"least": 100})
    assert page.status_code == 200
    assert "<script>window.__pwned" not in page.text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page.text
    assert 'href="/migrations/cross/embeddings"' in client.get("/").text
    too_few = client.get("/migrations/cross/embeddings?arm=other")
    assert "No verdict yet" in too_few.text and "0 query texts" in too_few.text


@pytest.fixture(scope="module")
def driver() -> Iterator[Chrome]:
    with chrome() as found:
        yield found


def test_the_page_in_a_browser(store: Store, driver: Chrome) -> None:
    config = WebConfig(embeddings={"cross": MIGRATION})
    with serve(create_app(lambda: store, config)) as base:  # type: ignore[arg-type, return-value]
        driver.get(f"{base}/migrations/cross/embeddings?least=100")
        text = driver.find_element(By.TAG_NAME, "main").text
        assert driver.find_element(By.CSS_SELECTOR, "[data-figure=verdict]").text == (
            "re-embed and retune"
        )
        report = json.loads(
            driver.execute_script(
                "return fetch('/api/v1/migrations/cross/embeddings?least=100').then(r => r.text())"
            )
        )
        overlap = report["agreement"]["overlap"]
        cell = driver.find_element(By.CSS_SELECTOR, "[data-figure=overlap-all]").text
        assert cell == f"{overlap['mean']:.3f} ({overlap['low']:.3f}–{overlap['high']:.3f})"
        assert driver.find_element(By.CSS_SELECTOR, "[data-figure='overlap-area=library']")
        # the traffic's markup is text on the page and never ran
        assert HOSTILE in text
        assert driver.execute_script("return window.__pwned === undefined")
        # both neighbour lists of every least-agreeing query, side by side
        sections = driver.find_elements(By.CSS_SELECTOR, "section.least")
        assert len(sections) == 60
        first = sections[0]
        old = first.find_elements(By.CSS_SELECTOR, "ol.old li")
        new = first.find_elements(By.CSS_SELECTOR, "ol.new li")
        assert len(old) == len(new) == 10
        assert old[0].location["y"] == new[0].location["y"] < old[1].location["y"]
        assert old[0].location["x"] < new[0].location["x"]
        item = report["least_agreeing"][0]
        assert old[0].text.startswith(item["old"][0]["id"])
        # the charts are the server's SVG; the thresholds table has the mapped cut-offs
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart-interval")
        assert len(charts) == 1  # adapter retention is not measured on 261 pairs
        assert "fewer than 2,000 pairs" in text
        mapped = {t["old"]: t["new"] for t in report["thresholds"]}
        assert driver.find_element(By.CSS_SELECTOR, "[data-figure='threshold-0.5']").text == (
            f"{mapped[0.5]:.4f}"
        )
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert all(url.startswith(f"{base}/") for url in loaded), loaded
        # no vector: no run of twenty numbers anywhere in the page
        assert not re.search(r"(-?\d+\.\d+[,\s]+){20}", driver.page_source)
        driver.get(f"{base}/migrations/cross/embeddings?least=2")
        screenshot(driver, "embeddings", full_page=True)


def test_the_migration_page_links_to_its_embedding_report(chdb_dir: Path) -> None:
    from tests.dashboards.generate import MIGRATION as NAME
    from tests.dashboards.generate import generate, stored

    data = generate(60, seed=3)
    arms = tuple(sorted({c.arm for c in data.comparisons}))
    with stored(chdb_dir, data) as opened:
        for embeddings, linked in (({NAME: EmbeddingMigration(NAME, arms)}, True), ({}, False)):
            config = WebConfig(embeddings=embeddings)
            client = TestClient(create_app(lambda: opened, config))  # type: ignore[arg-type, return-value]
            page = client.get(f"/migrations/{NAME}?window=all")
            assert page.status_code == 200
            link = f'href="/migrations/{NAME}/embeddings"'
            assert (link in page.text) is linked
            # an embedding migration's page says why equivalence and refusals stay empty
            assert ("its pairs are not judged for equivalence" in page.text) is linked


def test_a_report_is_built_again_only_when_what_it_reads_changed(
    chdb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real = embedding_pages.traffic_report

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs["least"])
        return real(*args, **kwargs)

    monkeypatch.setattr(embedding_pages, "traffic_report", counting)
    rows = synthetic_rows("rotated", 30, 90)
    config = WebConfig(embeddings={"rotated": EmbeddingMigration("rotated", ("b",))})
    api = "/api/v1/migrations/rotated/embeddings"
    with reference_store(chdb_dir, rows[:-1]) as opened:
        client = TestClient(create_app(lambda: opened, config))  # type: ignore[arg-type]
        first = client.get(api).json()
        assert first["documents"] == 89
        assert client.get(api).json() == first
        assert client.get("/migrations/rotated/embeddings").status_code == 200
        assert built == [10]  # the same rows: the API twice and the page, one build
        assert client.get(api, params={"least": 3}).json()["least_agreeing"] != []
        assert built == [10, 3]
        opened.insert_references(rows[-1:])  # a new text: the set changed
        assert client.get(api).json()["documents"] == 90
        assert built == [10, 3, 10]
        opened.insert_references(rows[-1:])  # the same text sent again: a newer insert
        client.get(api)
        assert built == [10, 3, 10, 10]
        # the adapter is written by a build, never served from memory
        client.get(api + "/adapter.npz")
        assert built == [10, 3, 10, 10, 1]
