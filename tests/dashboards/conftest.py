"""Fixtures of the dashboards' tests: a store holding the module's generated pairs, and the
offline embedding models' vectors of a sample of the embedding corpus, computed once per
session through the fake endpoint (`served`, tests/conftest.py; e5 embeds ~33 texts/s here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from judge.store.store import Store
from simulation.providers import Served
from tests.dashboards.embedding_traffic import OfflineVectors
from tests.dashboards.generate import Generated, stored
from tests.judge.embeddings.corpus import E5, E5_ENPT, WORDLLAMA, embed, load

#: The sample `offline_vectors` embeds: the corpus's first queries and documents (the same rows
#: `embeddings compare`'s tests read).
QUERIES, DOCUMENTS = 60, 200


@pytest.fixture
def store(chdb_dir: Path, data: Generated) -> Iterator[Store]:
    """The module's `data` fixture, written to a fresh database."""
    with stored(chdb_dir, data) as opened:
        yield opened


@pytest.fixture(scope="session")
def offline_vectors(served: Served) -> OfflineVectors:
    """wordllama-l2, multilingual-e5-small and its enpt fine-tune's vectors of QUERIES queries
    and DOCUMENTS documents of the corpus, each with the model's prefixes."""
    queries, documents = load(QUERIES, DOCUMENTS)
    with openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-test", timeout=300) as client:
        vectors = {
            model: (
                embed(client, model, queries, query=True),
                embed(client, model, documents, query=False),
            )
            for model in (WORDLLAMA, E5, E5_ENPT)
        }
    return OfflineVectors(queries=queries, documents=documents, vectors=vectors)
