"""Reference-set rows as the judge writes them from traffic, built from the offline models'
vectors (`offline_vectors` in conftest.py), for the embedding report's tests: the store, the
command and the page read the same rows."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from judge.config import StoreSettings
from judge.store.rows import ReferenceRow
from judge.store.store import Store
from tests.chdb import fresh_store
from tests.judge.embeddings.corpus import Sample

Vectors = npt.NDArray[np.float32]


OfflineVectors = Sample
"""The offline models' vectors of a sample of the corpus (`offline_vectors` in conftest.py)."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rows_of(
    migration: str,
    arm: str,
    role: str,
    texts: Sequence[str],
    segments: Sequence[str],
    old: tuple[str, Vectors],
    new: tuple[str, Vectors],
    *,
    seen_at: datetime | None = None,
) -> list[ReferenceRow]:
    """One row per text; its segment `area=<segment>` (the corpus's library / reference)."""
    seen = seen_at or datetime.now(UTC) - timedelta(hours=1)
    return [
        ReferenceRow(
            migration=migration,
            arm=arm,
            role=role,
            segment_key=f"area={segment}",
            segment={"area": segment},
            text_hash=text_hash(text),
            text=text,
            primary_model=old[0],
            primary_version=old[0],
            candidate_model=new[0],
            candidate_version=new[0],
            primary_vector=old[1][i],
            candidate_vector=new[1][i],
            call_id=f"c-{uuid.uuid4().hex[:8]}",
            seen_at=seen,
        )
        for i, (text, segment) in enumerate(zip(texts, segments, strict=True))
    ]


def migration_rows(
    sample: OfflineVectors,
    migration: str,
    arm: str,
    old: str,
    new: str,
    *,
    documents: bool = True,
    queries: int | None = None,
) -> list[ReferenceRow]:
    """The sample's queries (the first `queries`) and documents as one migration's reference
    rows; `documents=False`: only queries went through the sidecar."""
    (oq, od), (nq, nd) = sample.vectors[old], sample.vectors[new]
    n = len(sample.queries) if queries is None else queries
    q = sample.queries
    rows = rows_of(
        migration, arm, "query", q.texts[:n], q.segments[:n], (old, oq[:n]), (new, nq[:n])
    )
    if documents:
        d = sample.documents
        rows += rows_of(migration, arm, "document", d.texts, d.segments, (old, od), (new, nd))
    return rows


@contextmanager
def reference_store(where: Path | str, rows: Sequence[ReferenceRow]) -> Iterator[Store]:
    """A migrated store holding `rows`: at the URL `where`, or in a database of its own in the
    chDB directory `where`."""
    with (
        Store.open(StoreSettings(url=where)) if isinstance(where, str) else fresh_store(where, "e")
    ) as opened:
        opened.migrate()
        opened.insert_references(rows)
        yield opened


def synthetic_rows(
    migration: str, queries: int, documents: int, arm: str = "b"
) -> list[ReferenceRow]:
    """A rotated copy of random vectors with a little noise: a new model an adapter can map
    back (synthetic: 2,000 e5 texts would take a minute to embed here)."""
    rng = np.random.default_rng(1)
    old = rng.normal(size=(queries + documents, 24)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    new = (old @ rotation + 0.05 * rng.normal(size=old.shape)).astype(np.float32)
    texts = [f"text {i}" for i in range(queries + documents)]
    segments = ["one"] * (queries + documents)
    rows = rows_of(
        migration, arm, "query", texts[:queries], segments[:queries],
        ("old", old[:queries]), ("new", new[:queries]),
    )  # fmt: skip
    if documents:
        rows += rows_of(
            migration, arm, "document", texts[queries:], segments[queries:],
            ("old", old[queries:]), ("new", new[queries:]),
        )  # fmt: skip
    return rows
