"""Session-wide real parts: the Tansu Kafka broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker import TansuBroker


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
