"""The dashboards app through its ASGI interface: access, CSRF, JSON twins, escaping, errors."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from dashboards.web.access import COOKIE
from dashboards.web.app import WebConfig, create_app
from judge.errors import StoreUnavailableError
from judge.store.store import Store
from tests.dashboards.generate import MIGRATION, Generated, generate

TOKEN = "s3cret-token"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def data() -> Generated:
    found = generate(600, seed=2)
    # a hostile segment value and verdict reason: shown, never run
    first = found.comparisons[0]
    found.comparisons[0] = first._replace(
        segment={**first.segment, "tenant": HOSTILE},
        verdict_reason=f"judge: {HOSTILE}",
    )
    return found


def client(store: Store, token: str | None = TOKEN) -> TestClient:
    return TestClient(create_app(lambda: store, WebConfig(token=token)), follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrftoken" content="([^"]+)"', html)
    assert found, "the page carries its CSRF token"
    return found[1]


def test_open_without_a_token_but_writes_are_refused(store: Store, data: Generated) -> None:
    web = client(store, token=None)
    assert web.get("/?window=7d").status_code == 200
    page = web.get("/review?window=7d")
    assert "writes need a token" in page.text
    pair = data.comparisons[1]
    answer = web.post(
        "/review/label",
        data={
            "call_id": pair.call_id,
            "migration": MIGRATION,
            "arm": pair.arm,
            "judge_version": pair.judge_version,
            "action": "agree",
            "csrftoken": csrf_of(page.text),
        },
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 403
    assert "dashboards.token_env" in answer.json()["error"]
    assert store.select("SELECT count() AS n FROM reviews") == [{"n": 0}]


def test_a_token_closes_every_page(store: Store) -> None:
    web = client(store)
    answer = web.get("/review?window=7d")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Freview%3Fwindow%3D7d"
    api = web.get("/api/v1/migrations")
    assert api.status_code == 401
    assert web.get("/healthz").status_code == 200
    assert web.get("/api/v1/migrations", headers={"Authorization": f"Bearer {TOKEN}"}).is_success
    assert (
        web.get("/api/v1/migrations", headers={"Authorization": "Bearer nope"}).status_code == 401
    )


def test_login_sets_an_httponly_cookie(store: Store) -> None:
    web = client(store)
    form = web.get("/login?next=/review")
    wrong = web.post("/login", data={"token": "nope", "next": "/", "csrftoken": csrf_of(form.text)})
    assert wrong.status_code == 401
    assert "not the token" in wrong.text
    right = web.post(
        "/login", data={"token": TOKEN, "next": "//evil.example/", "csrftoken": csrf_of(form.text)}
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/"  # never off-site
    cookie = next(v for k, v in right.headers.multi_items() if k == "set-cookie" and COOKIE in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert web.get("/?window=7d").status_code == 200


def _label_form(data: Generated, csrf: str | None) -> dict[str, str]:
    pair = next(c for c in data.comparisons if c.verdict.value == "candidate_worse")
    form = {
        "call_id": pair.call_id,
        "migration": MIGRATION,
        "arm": pair.arm,
        "judge_version": pair.judge_version,
        "action": "agree",
        "kind": "judged worse",
        "queue_name": "disagreements",
        "reviewer": "ana",
    }
    if csrf is not None:
        form["csrftoken"] = csrf
    return form


def test_cookie_writes_need_the_csrf_token(store: Store, data: Generated) -> None:
    web = client(store)
    web.cookies.set(COOKIE, TOKEN)
    page = web.get("/review?window=7d")
    forged = web.post("/review/label", data=_label_form(data, None))
    assert forged.status_code == 403
    wrong = web.post("/review/label", data=_label_form(data, "forged"))
    assert wrong.status_code == 403
    assert store.select("SELECT count() AS n FROM reviews") == [{"n": 0}]
    good = web.post("/review/label", data=_label_form(data, csrf_of(page.text)))
    assert good.status_code == 303
    rows = store.select("SELECT reviewer, toString(label) AS label, queue FROM reviews")
    assert rows == [{"reviewer": "ana", "label": "candidate_worse", "queue": "disagreements"}]


def test_a_label_never_redirects_off_site(store: Store, data: Generated) -> None:
    web = client(store)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for back, expected in (
        ("//evil.example/x", "/review"),
        ("/\\evil.example", "/review"),
        ("/review?window=7d", "/review?window=7d"),
    ):
        answer = web.post(
            "/review/label", data={**_label_form(data, None), "back": back}, headers=auth
        )
        assert answer.headers["location"] == expected


def test_bearer_writes_are_not_csrf_checked(store: Store, data: Generated) -> None:
    web = client(store)
    answer = web.post(
        "/review/label",
        data=_label_form(data, None),
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
    )
    assert answer.status_code == 200
    assert answer.json()["label"] == "candidate_worse"


def test_unknown_actions_and_pairs_are_clear_errors(store: Store, data: Generated) -> None:
    web = client(store)
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    bad = web.post(
        "/review/label", data={**_label_form(data, None), "action": "nuke"}, headers=auth
    )
    assert bad.status_code == 400
    assert "expected one of agree" in bad.json()["error"]
    missing = web.post(
        "/review/label", data={**_label_form(data, None), "call_id": "nope"}, headers=auth
    )
    assert missing.status_code == 404


def test_hostile_text_is_escaped_everywhere(store: Store, data: Generated) -> None:
    web = client(store, token=None)
    pages = [
        "/migrations/support?window=7d",
        "/review?window=7d",
        f"/pairs/{MIGRATION}/{data.comparisons[0].arm}/{data.comparisons[0].call_id}",
        "/migrations/support?window=7d&segment=" + f"tenant={HOSTILE}",
    ]
    for url in pages:
        answer = web.get(url)
        assert answer.status_code == 200, url
        assert HOSTILE not in answer.text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in web.get(pages[0]).text


def test_json_twins(store: Store, data: Generated) -> None:
    web = client(store, token=None)
    listing = web.get("/api/v1/migrations?window=7d").json()
    assert [m["migration"] for m in listing["migrations"]] == [MIGRATION]
    analysis = web.get(f"/api/v1/migrations/{MIGRATION}/analysis?window=7d").json()
    sonnet = next(a for a in analysis["arms"] if a["arm"] == "sonnet")
    assert sonnet["pairs"] == sum(c.arm == "sonnet" for c in data.comparisons)
    assert set(sonnet["equivalence"]) >= {"estimate", "lower", "upper", "n", "method"}
    assert "tenant=acme" in analysis["segments"]
    pair = data.comparisons[3]
    detail = web.get(f"/api/v1/pairs/{MIGRATION}/{pair.arm}/{pair.call_id}").json()
    assert detail["pair"]["call"]["call_id"] == pair.call_id
    assert detail["comparisons"][0]["verdict"] == pair.verdict.value
    review = web.get("/api/v1/review?window=7d").json()
    assert review["items"] and review["queue"] == "disagreements"


def test_bad_parameters_and_missing_things(store: Store) -> None:
    web = client(store, token=None)
    assert web.get("/?window=fortnight").status_code == 400
    assert "expected one of" in web.get("/api/v1/migrations?window=fortnight").json()["error"]
    assert web.get("/api/v1/migrations/nope/analysis?window=7d").status_code == 404
    assert web.get("/migrations/support?window=7d&segment=acme").status_code == 400
    assert web.get("/api/v1/review?queue_name=mine").status_code == 400


def test_a_store_not_open_yet_is_a_503_with_the_reason() -> None:
    def source() -> Store:
        raise StoreUnavailableError("the store is being opened")

    web = TestClient(create_app(source, WebConfig()))
    answer = web.get("/")
    assert answer.status_code == 503
    assert "the store is being opened" in answer.text
    assert web.get("/api/v1/migrations").json() == {
        "error": "the store is not available: the store is being opened"
    }
    assert web.get("/healthz").json()["status"] == "degraded"


def test_the_migration_page_shows_and_moves_the_rollout(store: Store) -> None:
    from dashboards.rollout.control import RolloutController
    from mirror.migrations import MigrationSettings
    from mirror.rollout import Weights

    settings = MigrationSettings.model_validate(
        {
            "name": MIGRATION,
            "arms": [{"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"}],
            "rollout": {"steps": [0.05, 0.25], "hold": "10m"},
        }
    )
    weights = Weights()
    control = RolloutController([settings], lambda: store, weights)
    web = TestClient(
        create_app(lambda: store, WebConfig(token=TOKEN, rollout=control)), follow_redirects=False
    )
    web.cookies.set(COOKIE, TOKEN)
    page = web.get(f"/migrations/{MIGRATION}?window=7d")
    assert page.status_code == 200
    assert "claude serves 0% of the live calls" in page.text and "Roll back to 0%" in page.text
    form = {"weight": "25%", "reason": "canary fine", "csrftoken": csrf_of(page.text)}
    assert (
        web.post(f"/migrations/{MIGRATION}/rollout", data={**form, "csrftoken": "x"}).status_code
        == 403
    )
    moved = web.post(f"/migrations/{MIGRATION}/rollout", data=form)
    assert moved.status_code == 303 and moved.headers["location"].endswith("#rollout")
    held = weights.current(MIGRATION)
    assert held is not None and held.weight == 0.25 and held.actor == "page:page"
    again = web.get(f"/migrations/{MIGRATION}?window=7d").text
    assert "claude serves 25% of the live calls" in again and "canary fine" in again
