"""The LLM judge asked from the embedding page and its API: the fake OpenAI endpoint as the
judge (through the official SDK), a chDB store of the offline models' reference rows
(wordllama-l2 -> multilingual-e5-small). The verdicts are stored and shown by the next GET and
on the page, the verdict card uses their split as the command does, a second ask asks nothing,
and with no judge configured the answer is 409 with how to configure one."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from starlette.testclient import TestClient

from dashboards.analysis import embedding_report, list_judge
from dashboards.analysis.embedding_migration import EmbeddingMigration
from dashboards.web.app import WebConfig, create_app
from judge.scorers.pairwise import PairwiseJudge
from judge.store.store import Store
from mirror.config import ProviderSettings
from mirror.errors import ConfigError
from simulation.providers import FakeReply, OpenAIFake, Served
from tests.browser import chrome, screenshot, serve
from tests.dashboards.embedding_traffic import OfflineVectors, migration_rows, reference_store
from tests.judge.embeddings.corpus import E5, WORDLLAMA

MIGRATION = EmbeddingMigration("cross", ("e5", "other"), thresholds=(0.5, 0.75))
API = "/api/v1/migrations/cross/embeddings"
CLI = {"x-shadowjudge-client": "test"}


@pytest.fixture
def store(chdb_dir: Path, offline_vectors: OfflineVectors) -> Iterator[Store]:
    rows = migration_rows(offline_vectors, "cross", "e5", WORDLLAMA, E5)
    with reference_store(chdb_dir, rows) as opened:
        yield opened


def judge_of(served: Served) -> Any:
    provider = ProviderSettings(kind="openai", base_url=served.url)
    return lambda: PairwiseJudge(provider_name="local", provider=provider, model="judge-model")


def client(store: Store, **config: Any) -> TestClient:
    web = WebConfig(embeddings={"cross": MIGRATION}, **config)
    return TestClient(create_app(lambda: store, web))


def post(app: TestClient, path: str, **kwargs: Any) -> Any:
    """A POST as the command sends it: no cookie (the page views before set asgi-csrf's, and a
    cookie-carrying POST must carry its token)."""
    app.cookies.clear()
    return app.post(path, **kwargs)


def section(prompt: str, name: str) -> str:
    found = re.search(rf"<{name} (\w+)>\n(.*?)\n</{name} \1>", prompt, re.DOTALL)
    assert found is not None, name
    return found[2]


def prefers_new(report: dict[str, Any], asked: list[str]) -> Any:
    """A judge that picks the new model's list, whichever side it is shown on."""
    new_lists = {item["query"]: [d["id"] for d in item["new"]] for item in report["least_agreeing"]}

    def respond(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply:
        prompt = body["messages"][-1]["content"]
        asked.append(prompt)
        shown_a = re.findall(r"^\d+\. \[([^\]]+)\]", section(prompt, "list_a"), re.MULTILINE)
        letter = "A" if shown_a == new_lists[section(prompt, "query")] else "B"
        return FakeReply(text=json.dumps({"verdict": letter, "reason": "closer to the topic"}))

    return respond


def test_a_post_asks_the_judge_stores_and_the_next_get_shows_the_split(
    store: Store, fake: OpenAIFake, served: Served
) -> None:
    app = client(store, judge=judge_of(served))
    before = app.get(API, params={"least": 3}).json()
    assert "judge" not in before and all("judge" not in i for i in before["least_agreeing"])
    asked: list[str] = []
    fake.responder = prefers_new(before, asked)
    try:
        judged = post(app, f"{API}/judge", json={"least": 3}, headers=CLI)
        assert judged.status_code == 200, judged.text
        again = post(app, f"{API}/judge", json={"least": 3}, headers=CLI).json()
    finally:
        fake.responder = None
    assert judged.json()["asked"] == 3 and len(asked) == 6  # three queries, both orders
    assert again["asked"] == 0 and len(asked) == 6  # stored: nothing asked again
    shown = app.get(API, params={"least": 3}).json()
    split = shown["judge"]
    assert (split["better"], split["worse"], split["same"], split["errors"]) == (3, 0, 0, [])
    assert split["model"] == "local/judge-model" and (split["judged"], split["of"]) == (3, 3)
    assert [i["judge"] for i in shown["least_agreeing"]] == ["better"] * 3
    assert {i["judge_reason"] for i in shown["least_agreeing"]} == {"closer to the topic"}
    # the card is the command's: the verdict redone with the split
    overlap = embedding_report.estimate_of(shown["agreement"]["overlap"])
    assert shown["verdict"] == embedding_report.verdict(overlap, split)
    assert shown["verdict"] != before["verdict"]  # the reasons now say what the judge found
    assert "serves better" in " ".join(shown["verdict"]["reasons"])
    # stored by hash: the verdicts table holds no text
    rows = store.select("SELECT * FROM embedding_list_verdicts")
    assert len(rows) == 3 and all(r["verdict"] == "candidate_better" for r in rows)
    texts = {i["query"] for i in shown["least_agreeing"]}
    assert not any(text in json.dumps(rows, default=str) for text in texts)
    page = app.get("/migrations/cross/embeddings", params={"least": 3}).text
    assert "closer to the topic" in page
    assert re.search(r'better for <span data-figure="judge-better">3</span>', page)
    # more queries: only the ones not judged yet are asked
    fake.responder = prefers_new(app.get(API, params={"least": 5}).json(), asked)
    try:
        wider = post(app, f"{API}/judge", json={"least": 5}, headers=CLI).json()
    finally:
        fake.responder = None
    assert wider["judge"]["better"] == 5
    assert wider["asked"] == 2 and len(asked) == 10


def test_no_judge_configured_is_409_and_the_page_says_how(store: Store) -> None:
    app = client(store)
    refused = post(app, f"{API}/judge", json={"least": 3}, headers=CLI)
    assert refused.status_code == 409
    assert "no LLM judge configured: set judge.provider" in refused.json()["error"]
    page = app.get("/migrations/cross/embeddings").text
    assert 'data-figure="judge-how">no LLM judge configured: set judge.provider' in page
    assert "Ask the LLM judge" not in page


def test_asking_is_a_write(store: Store, served: Served) -> None:
    app = client(store, judge=judge_of(served))
    refused = post(app, f"{API}/judge", json={"least": 3})  # no token, not the command
    assert refused.status_code == 403 and "a write" in refused.json()["error"]
    assert app.post("/migrations/cross/embeddings/judge", data={"least": "3"}).status_code == 403
    page = app.get("/migrations/cross/embeddings").text
    assert "set <code>dashboards.token_env</code> to ask from this page" in page
    given = {"arm": "e5", "prompt_version": "lists-v1", "verdicts": []}
    assert post(app, f"{API}/verdicts", json=given).status_code == 403


def test_the_page_button_asks_with_the_token(
    store: Store, fake: OpenAIFake, served: Served
) -> None:
    app = client(store, judge=judge_of(served), token="secret")
    bearer = {"Authorization": "Bearer secret"}
    page = app.get("/migrations/cross/embeddings?least=2", headers=bearer).text
    assert 'action="/migrations/cross/embeddings/judge"' in page and "Ask the LLM judge" in page
    fake.responder = lambda body, headers: FakeReply(text='{"verdict": "A", "reason": "first"}')
    try:
        answer = app.post(
            "/migrations/cross/embeddings/judge",
            data={"arm": "e5", "least": "2"},
            headers=bearer,
            follow_redirects=False,
        )
    finally:
        fake.responder = None
    assert answer.status_code == 303
    assert answer.headers["location"] == "/migrations/cross/embeddings?arm=e5&least=2#judge"
    shown = app.get(API, params={"least": 2}, headers=bearer).json()["judge"]
    # always "A": a position bias, which the swap cancels
    assert (shown["better"], shown["worse"], shown["same"]) == (0, 0, 2)
    assert (
        "a position bias, not a preference"
        in app.get(answer.headers["location"], headers=bearer).text
    )


def test_the_button_in_a_browser_shows_the_judges_verdicts(
    store: Store, fake: OpenAIFake, served: Served
) -> None:
    """Signed in through the login form, the button pressed (the form's CSRF token, the
    cookie): the page comes back with the split in the card and each query's reason."""
    web = WebConfig(embeddings={"cross": MIGRATION}, judge=judge_of(served), token="secret")
    asked: list[str] = []
    with serve(create_app(lambda: store, web)) as base, chrome() as driver:
        target = "/migrations/cross/embeddings?least=2"
        driver.get(f"{base}/login?next={quote(target, safe='')}")
        driver.find_element(By.ID, "token").send_keys("secret")
        driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
        found = (By.CSS_SELECTOR, "[data-figure=judge-split]")
        card = WebDriverWait(driver, 60).until(ec.presence_of_element_located(found)).text
        assert "has not been asked" in card
        before = json.loads(
            driver.execute_script(
                f"return fetch('{API}?least=2').then(r => r.text())"  # the page's own cookie
            )
        )
        fake.responder = prefers_new(before, asked)
        try:
            old = driver.find_element(*found)
            driver.find_element(By.CSS_SELECTOR, "form.judge-ask button").click()
            WebDriverWait(driver, 60).until(ec.staleness_of(old))
            card = WebDriverWait(driver, 60).until(ec.presence_of_element_located(found)).text
        finally:
            fake.responder = None
        assert len(asked) == 4 and urlsplit(driver.current_url).fragment == "judge"
        assert "the new list serves better for 2, worse for 0, neither for 0" in card
        reasons = driver.find_elements(By.CSS_SELECTOR, "[data-figure=judge-reason]")
        said = "judge's reason (local/judge-model): closer to the topic"
        assert [r.text for r in reasons] == [said] * 2
        assert "judge: new list better" in driver.find_element(By.TAG_NAME, "main").text
        screenshot(driver, "embeddings-judged", full_page=True)


def test_a_verdict_on_other_lists_is_not_shown_and_bad_verdicts_are_refused(
    store: Store,
) -> None:
    app = client(store)
    item = app.get(API, params={"least": 1}).json()["least_agreeing"][0]
    given = {
        "query_hash": item["query_hash"],
        "lists_digest": list_judge.lists_digest(item),
        "judge": "cli/judge",
        "verdict": "worse",
        "reason": "the old list had the answer",
    }
    other = {**item, "new": list(reversed(item["new"]))}  # the lists a verdict was given on
    stale = {**given, "lists_digest": list_judge.lists_digest(other), "verdict": "better"}
    body = {"arm": "e5", "prompt_version": list_judge.PROMPT_VERSION, "verdicts": [stale]}
    assert post(app, f"{API}/verdicts", json=body, headers=CLI).json() == {"written": 1}
    assert "judge" not in app.get(API, params={"least": 1}).json()  # not these lists
    body["verdicts"] = [given]
    assert post(app, f"{API}/verdicts", json=body, headers=CLI).json() == {"written": 1}
    shown = app.get(API, params={"least": 1}).json()
    assert (shown["judge"]["worse"], shown["judge"]["model"]) == (1, "cli/judge")
    assert shown["least_agreeing"][0]["judge_reason"] == "the old list had the answer"
    for change, status, said in [
        ({"prompt_version": "lists-v0"}, 409, "this app asks 'lists-v1'"),
        ({"arm": "b"}, 400, "has no arm 'b'"),
        ({"verdicts": [{**given, "query_hash": "not-a-hash"}]}, 422, "query_hash"),
        ({"verdicts": [{**given, "verdict": "candidate_better"}]}, 422, "verdict"),
    ]:
        refused = post(app, f"{API}/verdicts", json={**body, **change}, headers=CLI)
        assert refused.status_code == status and said in refused.text, change


def test_a_judge_that_cannot_be_made_is_409_with_its_reason(store: Store) -> None:
    def missing_key() -> Any:
        raise ConfigError("judge.provider: environment variable 'KEY' is not set")

    refused = post(client(store, judge=missing_key), f"{API}/judge", json={}, headers=CLI)
    assert refused.status_code == 409
    assert refused.json()["error"] == (
        "the LLM judge cannot be asked: judge.provider: environment variable 'KEY' is not set"
    )
