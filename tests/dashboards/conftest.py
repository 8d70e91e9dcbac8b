"""Fixtures of the dashboards' tests: a store holding the module's generated pairs, and the
offline embedding models' vectors of a sample of the embedding corpus, computed once per
session through the fake endpoint (`served`, tests/conftest.py; e5 embeds ~33 texts/s here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from judge.store.store import Store
from simulation.providers import Served
from tests.dashboards.generate import Generated, stored
from tests.judge.embeddings.corpus import Sample, embed_sample

#: The sample `offline_vectors` embeds: the corpus's first queries and documents (the same rows
#: `embeddings compare`'s tests read).
QUERIES, DOCUMENTS = 60, 200


@pytest.fixture
def store(chdb_dir: Path, data: Generated) -> Iterator[Store]:
    """The module's `data` fixture, written to a fresh database."""
    with stored(chdb_dir, data) as opened:
        yield opened


@pytest.fixture(scope="session")
def offline_vectors(served: Served, shared_tmp: Path) -> Sample:
    """wordllama-l2, multilingual-e5-small and its enpt fine-tune's vectors of QUERIES queries
    and DOCUMENTS documents of the corpus, each with the model's prefixes."""
    return embed_sample(served.url, QUERIES, DOCUMENTS, shared=shared_tmp)
