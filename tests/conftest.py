"""Session-wide real parts: the Tansu Kafka broker, a chDB directory, and the fake OpenAI
endpoint serving the offline embedding models (`simulation.embeddings`).

chDB allows one data directory per process while any client is open, so every test that
needs a store uses this session's directory, each with a database of its own
(`chdb:///dir?database=t_...`), dropped when the test is done with it (`tests.chdb`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from judge.store.store import AsyncStore
from simulation.embeddings import offline_models
from simulation.providers import OpenAIFake, Served, openai_app, serve
from tests.broker import TansuBroker
from tests.chdb import fresh_async_store


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every process of this test run sees (pytest-xdist's workers each have a
    base directory of their own under one parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def kafka() -> Iterator[TansuBroker]:
    """One broker for the session; tests use topic names of their own."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_kafka() -> Iterator[TansuBroker]:
    """A broker for one test, which may stop and restart it."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
async def migrated_store(chdb_dir: Path) -> AsyncIterator[AsyncStore]:
    """A database of its own in the session's chDB directory, migrated."""
    async with fresh_async_store(chdb_dir, "t") as opened:
        yield opened


@pytest.fixture(scope="session")
def fake() -> OpenAIFake:
    """The fake OpenAI endpoint with the offline embedding models, one per session (tests reset
    what they set on it, such as `responder`, and count its requests as differences)."""
    return openai_app(embedders=offline_models())


@pytest.fixture(scope="session")
def served(fake: OpenAIFake) -> Iterator[Served]:
    with serve(fake) as running:
        yield running
