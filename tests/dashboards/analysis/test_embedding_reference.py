"""Reading an embedding migration's reference set from a real chDB store: equal allocation
across (role, segment) strata, the bottom k by text hash, one row per hash, the retention
window, and only the model pair the arm runs now."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dashboards.analysis.embedding_reference import allocate, read_reference
from judge.store.store import Store
from tests.dashboards.embedding_traffic import reference_store, rows_of, text_hash


def test_equal_allocation_caps_small_strata_and_shares_the_rest() -> None:
    assert allocate({"a": 1000, "b": 1000, "c": 1000}, 300) == {"a": 100, "b": 100, "c": 100}
    # the small stratum gives all it has; what it cannot use goes to the others
    assert allocate({"big": 5000, "small": 40, "mid": 1000}, 900) == {
        "big": 430,
        "small": 40,
        "mid": 430,
    }
    assert allocate({"a": 10, "b": 20}, 5000) == {"a": 10, "b": 20}
    assert sum(allocate({"a": 7, "b": 100, "c": 100}, 100).values()) == 100
    assert allocate({}, 10) == {}


def texts(prefix: str, n: int) -> list[str]:
    return [f"{prefix} text number {i}" for i in range(n)]


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


@pytest.fixture(scope="module")
def store(chdb_dir: Path) -> Iterator[Store]:
    rng = np.random.default_rng(0)

    def rows(role: str, segment: str, items: list[str], **kw: object) -> list:
        old = rng.normal(size=(len(items), 8)).astype(np.float32)
        new = rng.normal(size=(len(items), 6)).astype(np.float32)
        return rows_of(
            "m", "e5", role, items, [segment] * len(items), ("old-model", old),
            ("new-model", new), **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    found = [
        *rows("query", "library", texts("lib", 300)),
        *rows("query", "reference", texts("ref", 12)),
        *rows("document", "library", texts("doc", 200)),
        # seen before the migration's window (the rows' own TTL is longer): not read
        *(
            replace(r, retention_days=60)
            for r in rows("query", "library", texts("stale", 50), seen_at=days_ago(40))
        ),
    ]
    sent_twice = found[:5]
    # an earlier candidate version, seen long ago: left out, and said
    earlier = [
        replace(r, candidate_version="v0", seen_at=days_ago(3))
        for r in rows("query", "library", texts("earlier", 30))
    ]
    # the same version label asked for fewer dimensions before: another space, left out too
    narrower = [
        replace(r, candidate_vector=r.candidate_vector[:3], seen_at=days_ago(5))
        for r in rows("query", "library", texts("narrower", 7))
    ]
    with reference_store(chdb_dir, [*found, *sent_twice, *earlier, *narrower]) as opened:
        yield opened


def test_bottom_k_per_stratum_with_equal_allocation(store: Store) -> None:
    found = read_reference(store, "m", "e5", size=100, retention_days=30)
    assert found.primary == "old-model@old-model" and found.candidate == "new-model@new-model"
    strata = {(s.role, s.segment_key): (s.available, s.taken) for s in found.strata}
    assert strata == {
        ("document", "area=library"): (200, 44),
        ("query", "area=library"): (300, 44),
        ("query", "area=reference"): (12, 12),
    }
    assert found.available == 512 and found.taken == 100
    queries = zip(found.queries.hashes, found.queries.segments, strict=True)
    library = [h for h, s in queries if "library" in s]
    # the smallest hashes of the stratum, each once (five rows were sent twice)
    assert library == sorted(text_hash(t) for t in texts("lib", 300))[:44]
    assert len(set(found.queries.hashes)) == len(found.queries) == 56
    assert found.queries.primary.shape == (56, 8) and found.queries.candidate.shape == (56, 6)
    assert found.documents.primary.dtype == np.float32 and len(found.documents) == 44
    # each row's vectors travel with its text
    at = found.queries.texts.index(next(t for t in texts("ref", 12)))
    assert found.queries.hashes[at] == text_hash(found.queries.texts[at])
    assert found.other_models == [
        "old-model@old-model (8) -> new-model@v0 (6): 30 texts",
        "old-model@old-model (8) -> new-model@new-model (3): 7 texts",
    ]


def test_the_window_and_an_unknown_arm(store: Store) -> None:
    wider = read_reference(store, "m", "e5", size=10_000, retention_days=60)
    assert wider.available == 562  # the stale rows are back in a 60-day window
    assert read_reference(store, "m", "other", size=100, retention_days=30).strata == []
