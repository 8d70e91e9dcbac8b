"""Prices by model name: snapshots priced as their model, unknown models unpriced, names
remembered without changing an answer."""

from __future__ import annotations

from mirror.events import ProviderKind, Usage
from mirror.pricing import DEFAULT_PRICES, Price, PriceTable


def test_a_snapshot_is_priced_as_its_model_and_an_unknown_model_not_at_all() -> None:
    table = PriceTable()
    for _ in range(2):  # looked up, then remembered
        assert table.price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
        assert table.price("claude-sonnet-4-5-20250929") == DEFAULT_PRICES["claude-sonnet-4-5"]
        assert table.price("claude-sonnet-4-6") is None
        assert table.price(None) is None and table.price("") is None


def test_overrides_win_and_every_name_is_answered_past_what_is_remembered() -> None:
    table = PriceTable({"gpt-4o": Price(input=1.0, output=2.0)})
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert table.cost("gpt-4o", usage, ProviderKind.OPENAI) == 2.0
    for i in range(3000):
        assert table.price(f"unknown-{i}") is None
    assert table.price("gpt-4o-2024-08-06") == Price(input=1.0, output=2.0)
