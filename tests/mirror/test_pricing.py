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


def formula(price: Price | None, usage: Usage | None, kind: ProviderKind) -> float | None:
    """The price table's dollars, read from the prices as the module docstring says."""
    if price is None or usage is None or usage.input_tokens is None:
        return None
    cached, written = usage.cached_tokens or 0, usage.cache_write_tokens or 0
    plain = usage.input_tokens - (cached if kind is ProviderKind.OPENAI else 0)
    dollars = max(plain, 0) * price.input + (usage.output_tokens or 0) * price.output
    dollars += cached * (price.cached_input if price.cached_input is not None else price.input)
    dollars += written * (price.cache_write if price.cache_write is not None else price.input)
    return dollars / 1_000_000


def test_cost_is_the_formula_on_every_path() -> None:
    """`cost` reads remembered rates: the same dollars, to the bit, as the prices' formula, for
    models found, by snapshot, unknown, and past what is remembered."""
    table = PriceTable({"cheap": Price(input=0.3, output=0.7, cache_write=0.9)})
    models = ["gpt-4o", "claude-opus-4-5-20251101", "cheap", "unknown", "", None]
    models += [f"unknown-{i}" for i in range(1100)] + ["gpt-4.1-mini-2025-04-14", "cheap"]
    usages = [
        None,
        Usage(),
        Usage(input_tokens=1234, output_tokens=567),
        Usage(input_tokens=1000, output_tokens=None, cached_tokens=1500, cache_write_tokens=33),
        Usage(input_tokens=777, output_tokens=3, cached_tokens=700, cache_write_tokens=None),
    ]
    for model in models:
        for usage in usages:
            for kind in ProviderKind:
                expected = formula(table.price(model), usage, kind)
                assert table.cost(model, usage, kind) == expected, (model, usage, kind)
