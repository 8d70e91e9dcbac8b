"""The pair page says which refusal verdicts the LLM tier decided (the rules' score stays)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from dashboards.web.app import WebConfig, create_app
from judge.comparison import RefusalTier
from judge.store.store import Store
from tests.dashboards.generate import MIGRATION, Generated, generate


@pytest.fixture(scope="module")
def data() -> Generated:
    found = generate(60, seed=5)
    found.comparisons[0] = replace(found.comparisons[0], refusal_candidate_tier=RefusalTier.LLM)
    return found


def test_the_pair_page_names_the_llm_tier_where_it_decided(store: Store, data: Generated) -> None:
    client = TestClient(create_app(lambda: store, WebConfig(token=None)))
    tiered, plain = data.comparisons[0], data.comparisons[1]
    shown = client.get(f"/pairs/{MIGRATION}/{tiered.arm}/{tiered.call_id}").text
    assert shown.count('data-figure="refusal-tier"') == 1
    other = client.get(f"/pairs/{MIGRATION}/{plain.arm}/{plain.call_id}").text
    assert 'data-figure="refusal-tier"' not in other
