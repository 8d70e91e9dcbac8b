"""Approximately translated pairs on the migration page, its JSON twin and the pair page:
counted, shown, and left out (`?approximate=exclude`) or read alone (`only`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from dashboards.web.app import WebConfig, create_app
from judge.comparison import Comparison, Verdict
from judge.store.store import Store
from tests.dashboards.generate import MIGRATION, Generated, generate

NOTES = ("json_object as forced tool use", "top_p not sent")


@pytest.fixture(scope="module")
def data() -> Generated:
    found = generate(400, seed=9)
    found.comparisons[:] = [
        replace(c, candidate_approximations=NOTES[: 1 + i % 2])
        if c.arm_kind == "candidate" and i % 3 == 0
        else c
        for i, c in enumerate(found.comparisons)
    ]
    return found


def web(store: Store) -> TestClient:
    return TestClient(create_app(lambda: store, WebConfig(token=None)), follow_redirects=False)


def arm_of(analysis: dict, name: str) -> dict:
    return next(a for a in analysis["arms"] if a["arm"] == name)


def expected(rows: list[Comparison], arm: str) -> tuple[int, int]:
    mine = [c for c in rows if c.arm == arm]
    return len(mine), sum(c.verdict is Verdict.EQUIVALENT for c in mine)


def test_the_analysis_counts_and_filters_approximate_pairs(store: Store, data: Generated) -> None:
    client = web(store)
    url = f"/api/v1/migrations/{MIGRATION}/analysis?window=7d"
    every = client.get(url).json()
    arm = next(a["arm"] for a in every["arms"] if a["arm_kind"] == "candidate")
    approximate = [c for c in data.comparisons if c.candidate_approximations]
    faithful = [c for c in data.comparisons if not c.candidate_approximations]
    mine = [c for c in approximate if c.arm == arm]
    assert mine, "the generated data has approximate pairs on the arm"
    shown = arm_of(every, arm)
    assert shown["approximate_pairs"] == len(mine)
    assert shown["approximations"] == {
        NOTES[0]: len(mine),
        NOTES[1]: sum(len(c.candidate_approximations) == 2 for c in mine),
    }
    for value, rows in (("exclude", faithful), ("only", approximate)):
        found = arm_of(client.get(f"{url}&approximate={value}").json(), arm)
        pairs, equivalent = expected(rows, arm)
        assert (found["pairs"], found["verdicts"]["equivalent"]) == (pairs, equivalent)
    excluded = arm_of(client.get(f"{url}&approximate=exclude").json(), arm)
    assert excluded["approximate_pairs"] == 0
    # The noise arm is never translated: leaving approximate pairs out keeps all of it.
    noise = next(a["arm"] for a in every["arms"] if a["arm_kind"] == "noise")
    noise_all = arm_of(every, noise)["pairs"]
    assert arm_of(client.get(f"{url}&approximate=exclude").json(), noise)["pairs"] == noise_all


def test_bad_or_combined_filters_are_refused(store: Store) -> None:
    client = web(store)
    base = f"/api/v1/migrations/{MIGRATION}/analysis?window=7d"
    assert client.get(f"{base}&approximate=some").status_code == 400
    assert client.get(f"{base}&approximate=exclude&segment=tenant=acme").status_code == 400
    page = client.get(f"/migrations/{MIGRATION}?window=7d&approximate=only&segment=tenant=acme")
    assert page.status_code == 400
    # The segment the filter stands for is accepted as itself.
    same = f"{base}&approximate=exclude&segment=translation=faithful"
    assert client.get(same).status_code == 200


def test_the_pages_show_the_count_and_the_notes(store: Store, data: Generated) -> None:
    client = web(store)
    html = client.get(f"/migrations/{MIGRATION}?window=7d").text
    assert 'data-figure="approximate-pairs"' in html and NOTES[0] in html
    assert "approximate=exclude" in html
    only = client.get(f"/migrations/{MIGRATION}?window=7d&approximate=only").text
    assert '<option value="only" selected>' in only
    pair = next(c for c in data.comparisons if len(c.candidate_approximations) == 2)
    shown = client.get(f"/pairs/{MIGRATION}/{pair.arm}/{pair.call_id}").text
    assert f"{NOTES[0]}; {NOTES[1]}" in shown
    plain = next(c for c in data.comparisons if not c.candidate_approximations)
    assert (
        'data-figure="approximations"'
        not in client.get(f"/pairs/{MIGRATION}/{plain.arm}/{plain.call_id}").text
    )
