"""The dashboards in a real browser: headless Chromium against the app served by uvicorn, over
a chDB store of generated pairs, behind a token.

What a person sees is checked against what the generator wrote, counted here in Python: the
overview's figures, a migration's charts and coverage, one pair side by side, the review
queue's keyboard (labels land in the store, the agreement figure follows), the login gate,
and that no page loads anything from outside the server. Screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from selenium.webdriver import ActionChains, Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dashboards.web.app import WebConfig, create_app
from judge.comparison import Comparison, Verdict
from judge.store.store import Store
from tests.browser import chrome, screenshot, serve
from tests.chdb import fresh_store
from tests.dashboards.generate import Generated, generate

TOKEN = "browser-test-token"
WINDOW = "7d"
WAIT_S = 10
JUDGED = (
    Verdict.EQUIVALENT,
    Verdict.CANDIDATE_BETTER,
    Verdict.CANDIDATE_WORSE,
    Verdict.DIFFERENT,
)


class GatedStore:
    """The store as the app sees it, with a gate on writes: a test closes it to hold a label
    in flight on the server while the browser goes on."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = threading.Event()
        self.gate.set()

    def select(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.store.select(sql, parameters)

    def write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not self.gate.wait(WAIT_S):
            raise TimeoutError("the test never opened the write gate")
        self.store.write(table, columns, rows)


@dataclass(frozen=True)
class Site:
    base: str
    store: Store
    gated: GatedStore
    generated: Generated

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def comparison(self, call_id: str, arm: str) -> Comparison:
        return next(c for c in self.generated.comparisons if c.call_id == call_id and c.arm == arm)

    def reviews(self, call_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        where = "" if call_ids is None else " WHERE call_id IN {ids:Array(String)}"
        return self.store.select(
            "SELECT call_id, arm, toString(label) AS label, reviewer, queue FROM reviews"
            f"{where} ORDER BY created_at",
            {"ids": list(call_ids or [])},
        )


@pytest.fixture(scope="module")
def site(chdb_dir: Path) -> Iterator[Site]:
    generated = generate(3000, seed=11)
    with fresh_store(chdb_dir, "browser") as store:
        store.insert_pairs(generated.pairs, generated.comparisons)
        gated = GatedStore(store)
        app = create_app(lambda: gated, WebConfig(token=TOKEN))
        with serve(app) as base:
            yield Site(base, store, gated, generated)
        gated.gate.set()


@pytest.fixture(scope="module")
def driver() -> Iterator[Chrome]:
    with chrome() as found:
        yield found


def wait(driver: Chrome, timeout: float = WAIT_S) -> WebDriverWait[Chrome]:
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def sign_out(driver: Chrome, site: Site) -> None:
    driver.get(site.url("/healthz"))
    driver.delete_all_cookies()


def sign_in(driver: Chrome, site: Site, target: str, token: str = TOKEN) -> None:
    """Through the real form: the login page, the token typed, the button pressed."""
    driver.get(site.url(f"/login?next={quote(target, safe='')}"))
    field = wait(driver).until(ec.element_to_be_clickable((By.ID, "token")))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()


@pytest.fixture
def logged_in(driver: Chrome, site: Site) -> Chrome:
    sign_out(driver, site)
    sign_in(driver, site, "/?window=7d")
    wait(driver).until(ec.url_to_be(site.url("/?window=7d")))
    assert any(c["name"] == "shadowjudge_token" and c["httpOnly"] for c in driver.get_cookies())
    return driver


def figure(driver: Chrome, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval, from its formula (not the app's library)."""
    z = NormalDist().inv_cdf(0.975)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return centre - half, centre + half


# -- the overview ------------------------------------------------------------------------------


def test_overview_shows_the_generated_figures(logged_in: Chrome, site: Site) -> None:
    driver = logged_in
    driver.get(site.url(f"/?window={WINDOW}"))
    for arm in ("sonnet", "noise"):
        mine = [c for c in site.generated.comparisons if c.arm == arm]
        judged = [c for c in mine if c.verdict in JUDGED]
        equivalent = sum(c.verdict is Verdict.EQUIVALENT for c in judged)
        lower, upper = wilson(equivalent, len(judged))
        row = f"tr.arm[data-arm={arm}]"
        assert figure(driver, f"{row} [data-figure=pairs]") == f"{len(mine):,}"
        assert figure(driver, f"{row} [data-figure=judged]").splitlines() == [
            f"{len(judged):,}",
            f"{len(judged) / len(mine) * 100:.1f}%",
        ]
        shown = figure(driver, f"{row} [data-figure=equivalence]").splitlines()[0]
        assert shown == (
            f"{equivalent / len(judged) * 100:.1f}% ({lower * 100:.1f}–{upper * 100:.1f})"
        )
    # The candidate's row shows the noise floor beside its own rate.
    noise = figure(driver, "tr.arm[data-arm=noise] [data-figure=equivalence]")
    sonnet = figure(driver, "tr.arm[data-arm=sonnet] [data-figure=equivalence]")
    assert sonnet.splitlines()[1] == f"noise {noise}"
    screenshot(driver, "overview")


# -- one migration ----------------------------------------------------------------------------


def test_migration_page_draws_charts_and_explains_coverage(logged_in: Chrome, site: Site) -> None:
    driver = logged_in
    driver.get(site.url(f"/migrations/support?window={WINDOW}"))
    charts = driver.find_elements(By.CSS_SELECTOR, "section.arm-detail figure svg")
    assert len(charts) >= 4
    assert all(chart.size["width"] > 100 and chart.size["height"] > 50 for chart in charts)
    coverage = driver.find_element(By.CSS_SELECTOR, "#arm-sonnet table.coverage")
    rows = [
        [td.text for td in row.find_elements(By.CSS_SELECTOR, "td")]
        for row in coverage.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]

    def cause(prefix: str) -> list[str]:
        return next(cells for cells in rows if cells[0].startswith(prefix))

    sonnet = [c for c in site.generated.comparisons if c.arm == "sonnet"]
    key = cause("candidate skipped: no API key for provider 'anthropic'")
    assert "environment variable ANTHROPIC_API_KEY is not set" in key[0]
    assert key[1] == f"{sum('ANTHROPIC_API_KEY' in c.verdict_reason for c in sonnet):,}"
    assert key[3] == "ANTHROPIC_API_KEY unset: export it where the runner runs"
    assert "judge.provider" in cause("no LLM judge configured")[3]
    assert "judge error" in cause("judge timed out after 30 s")[0]
    screenshot(driver, "migration", full_page=True)


# -- one pair -----------------------------------------------------------------------------------


def test_pair_page_shows_both_answers_and_their_differences(logged_in: Chrome, site: Site) -> None:
    driver = logged_in
    comparison = next(
        c
        for c in site.generated.comparisons
        if c.arm == "sonnet" and c.verdict is Verdict.DIFFERENT
    )
    pair = next(p for p in site.generated.pairs if p.call.call_id == comparison.call_id)
    assert pair.call.primary.output is not None and pair.result.output is not None
    driver.get(site.url(f"/pairs/support/sonnet/{comparison.call_id}"))
    primary = driver.find_element(By.CSS_SELECTOR, "article.answer.primary pre.text")
    candidate = driver.find_element(By.CSS_SELECTOR, "article.answer.candidate pre.text")
    assert primary.is_displayed() and candidate.is_displayed()
    assert primary.text == pair.call.primary.output.text
    assert candidate.text == pair.result.output.text
    assert primary.find_elements(By.TAG_NAME, "del")
    assert candidate.find_elements(By.TAG_NAME, "ins")
    assert not primary.find_elements(By.TAG_NAME, "ins")
    assert not candidate.find_elements(By.TAG_NAME, "del")
    assert figure(driver, "[data-figure=verdict]") == "different"
    screenshot(driver, "pair")


# -- the review queue -------------------------------------------------------------------------


def agreement(driver: Chrome, arm: str) -> tuple[int, int]:
    agree, n = figure(driver, f'aside.agreement [data-figure="agreement-{arm}"]').split("/")
    return int(agree), int(n)


def current(driver: Chrome) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, "article.item.current")


def press(driver: Chrome, keys: str) -> None:
    ActionChains(driver).send_keys(keys).perform()


def saved(driver: Chrome, item: WebElement) -> None:
    """Wait for the label of `item` to answer: the item done, or a problem shown in it."""
    wait(driver).until(
        lambda _: (
            "done" in (item.get_attribute("class") or "").split()
            or item.find_elements(By.CSS_SELECTOR, ".problem")
        )
    )
    problems = [p.text for p in item.find_elements(By.CSS_SELECTOR, ".problem")]
    assert not problems, f"the label was refused: {problems}"


def focus_first(driver: Chrome, *, arm: str, kind: str) -> WebElement:
    """Move the queue's focus with j/k to the first unlabelled item of that arm and kind."""
    here, there, call = driver.execute_script(
        """const items = Array.from(document.querySelectorAll("article.item:not(.done)"));
        const at = items.findIndex(e => e.dataset.arm === arguments[0]
                                        && e.dataset.kind === arguments[1]);
        return [items.findIndex(e => e.classList.contains("current")), at,
                at < 0 ? null : items[at].dataset.call];""",
        arm,
        kind,
    )
    assert here >= 0, "no item has the focus"
    assert there >= 0, f"no {kind} item of {arm} in the queue"
    press(driver, "j" * (there - here) if there > here else "k" * (here - there))
    wait(driver).until(
        lambda d: current(d).get_attribute("data-call") == call, f"focus never reached {call}"
    )
    return current(driver)


def test_a_reviewer_labels_three_pairs_with_the_keyboard(logged_in: Chrome, site: Site) -> None:
    driver = logged_in
    driver.get(site.url(f"/review?window={WINDOW}"))
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "article.item.current")))
    stored_before = site.store.select("SELECT count() AS n FROM reviews")[0]["n"]
    agree0, n0 = agreement(driver, "sonnet")
    screenshot(driver, "review-before")
    try:
        labelled = label_three(driver, site, agree0, n0)
    finally:
        screenshot(driver, "review-after")
    assert agreement(driver, "sonnet") == (agree0 + 2, n0 + 3)
    assert all(
        "done"
        in driver.find_element(By.CSS_SELECTOR, f'article.item[data-call="{c}"]')
        .get_attribute("class")
        .split()
        for c in labelled
    )
    stored_after = site.store.select("SELECT count() AS n FROM reviews")[0]["n"]
    assert stored_after == stored_before + 3
    rows = site.reviews(list(labelled))
    assert {r["call_id"]: r["label"] for r in rows} == labelled
    assert {(r["arm"], r["reviewer"], r["queue"]) for r in rows} == {
        ("sonnet", "reviewer", "disagreements")
    }


def label_three(driver: Chrome, site: Site, agree0: int, n0: int) -> dict[str, str]:
    """Label three judged-worse pairs of sonnet with a, w and r; each item gets `done` and
    the agreement figure follows. Returns the labels expected in the store, by call."""
    # On a pair the judge found worse: agreeing stores its verdict, "judge wrong" the
    # opposite finding, "real regression" candidate_worse. Agreement: hit, miss, hit.
    steps = (("a", "candidate_worse", 1), ("w", "equivalent", 0), ("r", "candidate_worse", 1))
    labelled: dict[str, str] = {}
    hits = 0
    for count, (key, label, hit) in enumerate(steps, start=1):
        item = focus_first(driver, arm="sonnet", kind="judged worse")
        call = item.get_attribute("data-call")
        assert site.comparison(call, "sonnet").verdict is Verdict.CANDIDATE_WORSE
        press(driver, key)
        saved(driver, item)
        assert item.get_attribute("data-label") == label
        labelled[call] = label
        hits += hit
        expected = (agree0 + hits, n0 + count)
        wait(driver).until(
            lambda d, e=expected: agreement(d, "sonnet") == e, f"agreement never {expected}"
        )
    return labelled


def test_a_key_pressed_while_a_label_is_saving_never_labels_that_pair_twice(
    logged_in: Chrome, site: Site
) -> None:
    driver = logged_in
    driver.get(site.url(f"/review?window={WINDOW}"))
    first = wait(driver).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "article.item.current"))
    )
    call = first.get_attribute("data-call")
    # Count the page's requests in flight, so the test knows when every label has answered.
    driver.execute_script(
        """window.inFlight = 0; const original = window.fetch;
        window.fetch = (...args) => { window.inFlight++;
            return original(...args).finally(() => { window.inFlight--; }); };"""
    )
    site.gated.gate.clear()
    try:
        press(driver, "a")  # its POST waits at the gate, so the label is still saving...
        press(driver, "w")  # ...when the reviewer goes on
    finally:
        site.gated.gate.set()
    wait(driver).until(lambda d: d.execute_script("return window.inFlight") == 0)
    saved(driver, first)
    assert len(site.reviews([call])) == 1, site.reviews([call])


def test_the_agreement_figure_keeps_the_window_of_the_page(logged_in: Chrome, site: Site) -> None:
    driver = logged_in
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (midnight - timedelta(days=1), midnight)
    # Labels on judged pairs captured outside yesterday: they count in 7d, not in yesterday.
    outside = [
        c
        for c in site.generated.comparisons
        if c.arm == "sonnet"
        and c.verdict is Verdict.EQUIVALENT
        and not yesterday[0] <= c.captured_at < yesterday[1]
    ][:5]
    assert len(outside) == 5
    columns = ("call_id", "migration", "arm", "judge_version", "reviewer", "label", "queue")
    site.store.write(
        "reviews",
        (*columns, "created_at"),
        [
            (c.call_id, c.migration, c.arm, c.judge_version, "old", "equivalent", "", now)
            for c in outside
        ],
    )
    driver.get(site.url("/review"))  # the daily review: yesterday, UTC
    assert figure(driver, "h1 small") == yesterday[0].date().isoformat()
    before = agreement(driver, "sonnet")
    item = focus_first(driver, arm="sonnet", kind="judged worse")
    item.find_element(By.CSS_SELECTOR, "button[value=agree]").click()
    saved(driver, item)
    text = f"{before[0]}/{before[1]}"
    wait(driver).until_not(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, 'aside.agreement [data-figure="agreement-sonnet"]'), text
        )
    )
    assert agreement(driver, "sonnet") == (before[0] + 1, before[1] + 1)


# -- the login gate -------------------------------------------------------------------------


def test_pages_need_the_token(driver: Chrome, site: Site) -> None:
    sign_out(driver, site)
    driver.get(site.url(f"/review?window={WINDOW}"))
    wait(driver).until(ec.presence_of_element_located((By.ID, "token")))
    landed = urlsplit(driver.current_url)
    assert landed.path == "/login"
    assert parse_qs(landed.query)["next"] == [f"/review?window={WINDOW}"]
    assert not driver.find_elements(By.CSS_SELECTOR, "article.item")
    screenshot(driver, "login")

    sign_in(driver, site, f"/review?window={WINDOW}", token="not-the-token")
    alert = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "p.problem[role=alert]"))
    )
    assert alert.text == "That is not the token."
    assert urlsplit(driver.current_url).path == "/login"
    assert not any(c["name"] == "shadowjudge_token" for c in driver.get_cookies())
    screenshot(driver, "login-failed")

    sign_in(driver, site, f"/review?window={WINDOW}")
    wait(driver).until(ec.url_to_be(site.url(f"/review?window={WINDOW}")))
    assert driver.find_elements(By.CSS_SELECTOR, "article.item")


# -- nothing from elsewhere -----------------------------------------------------------------


def test_pages_load_nothing_from_outside_the_server(logged_in: Chrome, site: Site) -> None:
    driver = logged_in
    some = next(c for c in site.generated.comparisons if c.arm == "sonnet")
    pages = (
        f"/?window={WINDOW}",
        f"/migrations/support?window={WINDOW}",
        f"/pairs/support/sonnet/{some.call_id}",
        f"/review?window={WINDOW}",
        "/login",
    )
    for page in pages:
        driver.get(site.url(page))
        loaded: list[str] = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        referenced: list[str] = driver.execute_script(
            """return Array.from(document.querySelectorAll(
                "script[src], link[href], img[src], iframe[src], source[src], object[data]"
            )).map(e => e.src || e.href || e.data)"""
        )
        assert loaded, f"{page}: no resources at all (the stylesheet?)"
        outside = [u for u in loaded + referenced if not u.startswith(f"{site.base}/")]
        assert not outside, f"{page} loads from outside the server: {outside}"
