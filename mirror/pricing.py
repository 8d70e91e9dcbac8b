"""The price table: what a call cost, from its usage. The runner enforces spend caps with it;
the judge records the cost of both sides with it.

Defaults are the providers' public list prices per million tokens for well-known models (as
published in 2025); `prices:` in `shadowjudge.yaml` overrides or adds models, and should, for
any model a team relies on — list prices change. A model is found by its exact name, then with
a trailing snapshot date removed (`gpt-4o-2024-08-06` → `gpt-4o`,
`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`); an unknown model has no price (None),
never a guessed one.

Cached input tokens are priced at the cached rate and are part of `input_tokens` for OpenAI
(`prompt_tokens` includes them) but not for Anthropic (`input_tokens` excludes cache reads and
writes); `Usage` keeps the provider's meaning, so the computation asks which kind it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from mirror.events import ProviderKind, Usage


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


def _p(i: float, o: float, cached: float | None = None, write: float | None = None) -> Price:
    return Price(input=i, output=o, cached_input=cached, cache_write=write)


DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "o3": _p(2.00, 8.00, 0.50),
    "o4-mini": _p(1.10, 4.40, 0.275),
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    # Anthropic (cache writes at the 5-minute rate)
    "claude-opus-4-1": _p(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4-0": _p(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4-5": _p(5.00, 25.00, 0.50, 6.25),
    "claude-sonnet-4-5": _p(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4-0": _p(3.00, 15.00, 0.30, 3.75),
    "claude-haiku-4-5": _p(1.00, 5.00, 0.10, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08, 1.00),
}

_SNAPSHOT = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
_MODELS_REMEMBERED = 1024  # model names come from answers: bounded, whatever arrives
_OPENAI = ProviderKind.OPENAI
_Rates = tuple[float, float, float, float]


class PriceTable:
    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **(overrides or {})}
        #: Models looked up before, by the name asked: the judge prices two answers a pair,
        #: and a snapshot or unknown name took a regex substitution each time.
        self._found: dict[str, Price | None] = {}
        #: `cost`'s rates by model (input, output, cached input, cache write), remembered as
        #: `_found` is: the judge prices two answers a pair, and reading a pydantic model's
        #: four fields and their fallbacks took most of its ~1.4 µs.
        self._rates: dict[str, _Rates | None] = {}

    def price(self, model: str | None) -> Price | None:
        if not model:
            return None
        try:
            return self._found[model]
        except KeyError:
            pass
        found = self._prices.get(model)
        if found is None:
            found = self._prices.get(_SNAPSHOT.sub("", model))
        if len(self._found) < _MODELS_REMEMBERED:
            self._found[model] = found
        return found

    def cost(self, model: str | None, usage: Usage | None, kind: ProviderKind) -> float | None:
        """Dollars for one call, or None when the model has no price or usage is unknown."""
        if usage is None or not model:
            return None
        tokens = usage.input_tokens
        if tokens is None:
            return None
        try:
            rates = self._rates[model]
        except KeyError:
            rates = self._remember_rates(model)
        if rates is None:
            return None
        rate_in, rate_out, rate_cached, rate_written = rates
        cached = usage.cached_tokens or 0
        written = usage.cache_write_tokens or 0
        plain = tokens - cached if kind is _OPENAI else tokens
        dollars = (plain if plain > 0 else 0) * rate_in + (usage.output_tokens or 0) * rate_out
        dollars += cached * rate_cached
        dollars += written * rate_written
        return dollars / 1_000_000

    def _remember_rates(self, model: str) -> _Rates | None:
        price = self.price(model)
        rates = None
        if price is not None:
            cached = price.cached_input if price.cached_input is not None else price.input
            written = price.cache_write if price.cache_write is not None else price.input
            rates = (price.input, price.output, cached, written)
        if len(self._rates) < _MODELS_REMEMBERED:
            self._rates[model] = rates
        return rates
