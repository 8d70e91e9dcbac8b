"""The embedding cache: hits and misses, every key part, a restart, retention."""

from __future__ import annotations

import dataclasses
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from mirror.embeddings import CacheKey, EmbeddingCache, EmbeddingModel, Role

MODEL = EmbeddingModel(
    provider="local",
    model="multilingual-e5-small",
    version="v1",
    dimensions=None,
    normalize=True,
    query_prefix="query: ",
    document_prefix="passage: ",
)
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def vector(seed: int, width: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(width).astype(np.float32)


def test_a_stored_vector_is_a_hit_and_any_other_key_a_miss(tmp_path: Path) -> None:
    with EmbeddingCache.open(tmp_path / "cache.sqlite3") as cache:
        stored = MODEL.key("hello", Role.DOCUMENT)
        cache.put_many({stored: vector(1)})
        found = cache.get_many([stored, MODEL.key("other text", Role.DOCUMENT)])
        assert list(found) == [stored]
        np.testing.assert_array_equal(found[stored], vector(1))
        assert found[stored].dtype == np.float32


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "multilingual-e5-small-enpt"},
        {"version": "v2"},
        {"dimensions": 256},
        {"normalize": False},
        {"document_prefix": "query: "},
        {"document_input_type": "document"},
    ],
)
def test_every_part_of_the_key_matters(tmp_path: Path, changed: dict[str, object]) -> None:
    other = dataclasses.replace(MODEL, **changed)  # type: ignore[arg-type]
    with EmbeddingCache.open(tmp_path / "cache.sqlite3") as cache:
        cache.put_many({MODEL.key("hello", Role.DOCUMENT): vector(1)})
        assert cache.get_many([other.key("hello", Role.DOCUMENT)]) == {}
        assert len(cache.get_many([MODEL.key("hello", Role.DOCUMENT)])) == 1


def test_the_text_and_the_role_prefix_are_part_of_the_key(tmp_path: Path) -> None:
    with EmbeddingCache.open(tmp_path / "cache.sqlite3") as cache:
        cache.put_many({MODEL.key("hello", Role.DOCUMENT): vector(1)})
        assert cache.get_many([MODEL.key("hello", Role.QUERY)]) == {}
        assert cache.get_many([MODEL.key("hello ", Role.DOCUMENT)]) == {}
        # the provider is not: the same model behind another endpoint gives the same vectors
        elsewhere = dataclasses.replace(MODEL, provider="openai")
        assert len(cache.get_many([elsewhere.key("hello", Role.DOCUMENT)])) == 1


def test_the_input_type_of_each_role_is_part_of_the_key(tmp_path: Path) -> None:
    typed = dataclasses.replace(
        MODEL, query_prefix="", document_prefix="", query_input_type="query",
        document_input_type="document",
    )  # fmt: skip
    assert typed.key("hello", Role.QUERY).input_type == "query"
    with EmbeddingCache.open(tmp_path / "cache.sqlite3") as cache:
        cache.put_many({typed.key("hello", Role.QUERY): vector(1)})
        assert cache.get_many([typed.key("hello", Role.DOCUMENT)]) == {}
        untyped = dataclasses.replace(typed, query_input_type="")
        assert cache.get_many([untyped.key("hello", Role.QUERY)]) == {}
        assert len(cache.get_many([typed.key("hello", Role.QUERY)])) == 1


OLD_FILE = """
CREATE TABLE vectors (
    model TEXT NOT NULL, version TEXT NOT NULL, dimensions INTEGER NOT NULL,
    normalize INTEGER NOT NULL, prefix TEXT NOT NULL, text_sha256 BLOB NOT NULL,
    width INTEGER NOT NULL, vector BLOB NOT NULL, created_at REAL NOT NULL,
    UNIQUE (model, version, dimensions, normalize, prefix, text_sha256)
);
CREATE INDEX vectors_created_at ON vectors (created_at);
"""


def test_a_file_from_before_input_types_keeps_its_vectors(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    clock = Clock()
    key = MODEL.key("hello", Role.DOCUMENT)
    with sqlite3.connect(path) as old:
        old.executescript(OLD_FILE)
        old.execute(
            "INSERT INTO vectors VALUES (?, ?, 0, 1, ?, ?, 8, ?, ?)",
            (key.model, key.version, key.prefix, key.text_sha256, vector(1).tobytes(), clock.now),
        )
    old.close()
    with EmbeddingCache.open(path, clock=clock) as cache:
        np.testing.assert_array_equal(cache.get_many([key])[key], vector(1))
        typed = dataclasses.replace(MODEL, document_input_type="document")
        cache.put_many({typed.key("hello", Role.DOCUMENT): vector(2)})
        assert len(cache) == 2
        clock.now += 31 * DAY  # the retention still reads the old rows' age
        assert cache.prune() == 2
    with EmbeddingCache.open(path) as reopened:  # rebuilt once: opening again changes nothing
        assert len(reopened) == 0


def test_vectors_survive_a_restart_in_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache.sqlite3"
    keys = [MODEL.key(f"text {i}", Role.DOCUMENT) for i in range(50)]
    with EmbeddingCache.open(path) as cache:
        cache.put_many({key: vector(i) for i, key in enumerate(keys)})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with EmbeddingCache.open(path) as reopened:
        found = reopened.get_many(keys)
        assert len(reopened) == 50
        assert reopened.count(MODEL.model, "v1") == 50
    for i, key in enumerate(keys):
        np.testing.assert_array_equal(found[key], vector(i))


def test_rows_older_than_max_age_are_pruned_at_open_and_on_demand(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "cache.sqlite3"
    old, recent = MODEL.key("old", Role.DOCUMENT), MODEL.key("recent", Role.DOCUMENT)
    with EmbeddingCache.open(path, max_age_days=30, clock=clock) as cache:
        cache.put_many({old: vector(1)})
        clock.now += 20 * DAY
        cache.put_many({recent: vector(2)})
        clock.now += 5 * DAY
        assert cache.prune() == 0
    clock.now += 6 * DAY  # old is 31 days old, recent 11
    with EmbeddingCache.open(path, max_age_days=30, clock=clock) as reopened:
        assert list(reopened.get_many([old, recent])) == [recent]
        clock.now += 20 * DAY
        assert reopened.prune() == 1
        assert len(reopened) == 0


def test_past_max_entries_the_oldest_go_first(tmp_path: Path) -> None:
    clock = Clock()
    keys = [MODEL.key(f"t{i}", Role.DOCUMENT) for i in range(5)]
    with EmbeddingCache.open(
        tmp_path / "cache.sqlite3", max_age_days=None, max_entries=3, clock=clock
    ) as cache:
        for i, key in enumerate(keys):
            cache.put_many({key: vector(i)})
            clock.now += 1
        assert cache.prune() == 2
        assert set(cache.get_many(keys)) == set(keys[2:])


def test_nonsensical_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_age_days"):
        EmbeddingCache.open(tmp_path / "a.sqlite3", max_age_days=0)
    with pytest.raises(ValueError, match="max_entries"):
        EmbeddingCache.open(tmp_path / "b.sqlite3", max_entries=0)
    assert not (tmp_path / "a.sqlite3").exists()


def test_a_key_hashes_the_text_and_never_holds_it() -> None:
    key = MODEL.key("a secret sentence", Role.QUERY)
    assert isinstance(key, CacheKey)
    assert len(key.text_sha256) == 32
    assert "a secret sentence" not in repr(key)
    assert key.prefix == "query: "
