"""The pages say which refusal verdicts the LLM tier decided (the rules' score stays): the pair
page per side, the migration page and its JSON twin as counts per side from the hourly stats."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from dashboards.web.app import WebConfig, create_app
from judge.comparison import RefusalTier
from judge.store.store import Store
from tests.dashboards.generate import MIGRATION, Generated, generate

#: The first TIERED pairs have their candidate side decided by the LLM tier, every other one
#: of them their primary side too.
TIERED = 12


@pytest.fixture(scope="module")
def data() -> Generated:
    found = generate(60, seed=5)
    found.comparisons[:TIERED] = [
        c._replace(
            refusal_candidate_tier=RefusalTier.LLM,
            refusal_candidate=c.refusal_candidate or i % 3 == 0,
            refusal_primary_tier=RefusalTier.LLM if i % 2 == 0 else RefusalTier.RULES,
        )
        for i, c in enumerate(found.comparisons[:TIERED])
    ]
    return found


def client_of(store: Store) -> TestClient:
    return TestClient(create_app(lambda: store, WebConfig(token=None)))


def test_the_pair_page_names_the_llm_tier_where_it_decided(store: Store, data: Generated) -> None:
    client = client_of(store)
    tiered, plain = data.comparisons[1], data.comparisons[-1]
    assert plain.refusal_candidate_tier is plain.refusal_primary_tier is RefusalTier.RULES
    shown = client.get(f"/pairs/{MIGRATION}/{tiered.arm}/{tiered.call_id}").text
    assert shown.count('data-figure="refusal-tier"') == 1
    other = client.get(f"/pairs/{MIGRATION}/{plain.arm}/{plain.call_id}").text
    assert 'data-figure="refusal-tier"' not in other


def test_the_migration_counts_the_verdicts_the_llm_tier_decided(
    store: Store, data: Generated
) -> None:
    client = client_of(store)
    found = client.get(f"/api/v1/migrations/{MIGRATION}/analysis?window=7d").json()
    for arm in found["arms"]:
        mine = [c for c in data.comparisons if c.arm == arm["arm"]]
        for side in ("primary", "candidate"):
            decided = [c for c in mine if getattr(c, f"refusal_{side}_tier") is RefusalTier.LLM]
            refused = sum(getattr(c, f"refusal_{side}") for c in decided)
            got = arm[side]
            assert (got["refusal_llm_decided"], got["refusal_llm_found"]) == (
                len(decided),
                refused,
            )
    assert sum(a["candidate"]["refusal_llm_decided"] for a in found["arms"]) == TIERED
    assert sum(a["candidate"]["refusal_llm_found"] for a in found["arms"]) >= TIERED // 3
    page = client.get(f"/migrations/{MIGRATION}?window=7d").text
    assert 'data-figure="refusal-llm"' in page
    assert "LLM tier decided" in page
