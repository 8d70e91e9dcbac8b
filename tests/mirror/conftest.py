"""Fixtures of the mirror's tests: the fake OpenAI endpoint serving the offline embedding
models (`simulation.embeddings`), one per session, for the embedding client's and the
runner's embedding arms' tests (tests count its requests as differences)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulation.embeddings import offline_models
from simulation.providers import OpenAIFake, Served, openai_app, serve


@pytest.fixture(scope="session")
def fake() -> OpenAIFake:
    return openai_app(embedders=offline_models())


@pytest.fixture(scope="session")
def served(fake: OpenAIFake) -> Iterator[Served]:
    with serve(fake) as running:
        yield running
