"""Fixtures of the dashboards' tests: a store holding the module's generated pairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from judge.store.store import Store
from tests.dashboards.generate import Generated, stored


@pytest.fixture
def store(chdb_dir: Path, data: Generated) -> Iterator[Store]:
    """The module's `data` fixture, written to a fresh database."""
    with stored(chdb_dir, data) as opened:
        yield opened
