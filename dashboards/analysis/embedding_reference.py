"""The reference set of an embedding migration, read from the store's `embedding_reference`.

The runner sends, per (migration, arm, role, segment_key) stratum, the texts whose key (the hex
SHA-256 of the text) is among the smallest it has seen, with both models' vectors; a text can
arrive twice (a restart, a replay). Reading is what makes the sample deterministic:

- only rows seen within `retention_days` (the table's TTL deletes them later, at a merge);
- only the model pair the arm runs now: the (primary model, version and width, candidate
  model, version and width) with the most recent row — vectors of another version (or of
  another `dimensions` under the same version label) live in another space and are never
  mixed in; older pairs still in the table are counted and said (`other_models`);
- per stratum, the rows with the smallest `text_hash`, one row per hash (`LIMIT 1 BY`, the
  latest insert) — so the set does not depend on which runner sent what;
- `reference_size` allocated across strata equally, each capped by what it has and the rest
  shared among the others ("equal allocation"): a small segment is represented by all it has
  instead of by its share of traffic.

Every value travels as a bound parameter (`{name:Type}`), as in `dashboards.analysis.queries`.
Vectors are decoded into float32 arrays here and go no further than the report builder: pages
and the API never show them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from dashboards.analysis.queries import Reader

if TYPE_CHECKING:
    import numpy.typing as npt

ROLES = ("query", "document")
_WHERE = (
    "migration = {migration:String} AND arm = {arm:String}"
    " AND seen_at >= now64(6) - toIntervalDay({days:UInt32})"
)
_MODELS = (
    " AND primary_model = {primary_model:String} AND primary_version = {primary_version:String}"
    " AND candidate_model = {candidate_model:String}"
    " AND candidate_version = {candidate_version:String}"
    " AND length(primary_vector) = {primary_width:UInt32}"
    " AND length(candidate_vector) = {candidate_width:UInt32}"
)

Key = TypeVar("Key", bound=Hashable)


def allocate(available: Mapping[Key, int], total: int) -> dict[Key, int]:
    """Equal allocation of `total` across strata, each capped by what it has, the rest shared
    among the strata that have more (smallest strata served first; a remainder that does not
    divide goes to the larger strata, in the mapping's order)."""
    taken: dict[Key, int] = {key: 0 for key in available}
    left = max(0, total)
    order = sorted(available, key=lambda key: available[key])
    for n, key in enumerate(order):
        share = left // (len(order) - n)
        taken[key] = min(available[key], share)
        left -= taken[key]
    return taken


@dataclass(frozen=True, slots=True)
class Stratum:
    role: str
    segment_key: str
    available: int
    taken: int


@dataclass(frozen=True, slots=True)
class Texts:
    """One role's texts of the reference set, rows aligned with both models' vectors."""

    hashes: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    primary: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32)
    )
    candidate: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32)
    )

    def __len__(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True, slots=True)
class ReferenceSet:
    migration: str
    arm: str
    size: int
    retention_days: int
    primary: str = ""
    """The primary model as `model@version` ("" when nothing is stored)."""
    candidate: str = ""
    strata: list[Stratum] = field(default_factory=list)
    queries: Texts = field(default_factory=Texts)
    documents: Texts = field(default_factory=Texts)
    other_models: list[str] = field(default_factory=list)
    """Older model pairs with rows in the retention window, left out (`old -> new: N texts`)."""
    models: tuple[str, str, str, str] = ("", "", "", "")
    """(primary model, its version, candidate model, its version) of the pair read."""

    @property
    def available(self) -> int:
        return sum(s.available for s in self.strata)

    @property
    def taken(self) -> int:
        return sum(s.taken for s in self.strata)


def reference_version(
    reader: Reader, migration: str, arm: str, *, retention_days: int
) -> tuple[int, str]:
    """What changes whenever the arm's reference set can: the rows within the retention
    window and the latest insert among them (a new text, a text sent again, a row past the
    window). One aggregate over the arm's rows, no vector read."""
    rows = reader.select(
        f"""SELECT count() AS rows, toString(max(inserted_at)) AS latest
FROM embedding_reference
WHERE {_WHERE}""",
        {"migration": migration, "arm": arm, "days": retention_days},
    )
    return (int(rows[0]["rows"]), str(rows[0]["latest"])) if rows else (0, "")


_PAIRS = f"""SELECT primary_model, primary_version, candidate_model, candidate_version,
    length(primary_vector) AS primary_width, length(candidate_vector) AS candidate_width,
    uniqExact(text_hash) AS texts, max(seen_at) AS last
FROM embedding_reference
WHERE {_WHERE}
GROUP BY primary_model, primary_version, candidate_model, candidate_version,
    primary_width, candidate_width
ORDER BY last DESC, texts DESC"""
_MODEL_NAMES = ("primary_model", "primary_version", "candidate_model", "candidate_version")


def current_models(
    reader: Reader, migration: str, arm: str, *, retention_days: int
) -> tuple[str, str, str, str] | None:
    """The model pair `read_reference` reads now (primary model, version, candidate model,
    version), None when nothing is stored: what a verdict on the report's lists is about."""
    pairs = reader.select(
        _PAIRS + "\nLIMIT 1", {"migration": migration, "arm": arm, "days": retention_days}
    )
    if not pairs:
        return None
    return _models(pairs[0])


def _models(row: Mapping[str, object]) -> tuple[str, str, str, str]:
    primary, primary_version, candidate, candidate_version = (str(row[n]) for n in _MODEL_NAMES)
    return primary, primary_version, candidate, candidate_version


def read_reference(
    reader: Reader, migration: str, arm: str, *, size: int, retention_days: int
) -> ReferenceSet:
    """The migration's reference set for one arm (empty when nothing is stored)."""
    params: dict[str, object] = {"migration": migration, "arm": arm, "days": retention_days}
    pairs = reader.select(_PAIRS, params)
    empty = ReferenceSet(migration, arm, size, retention_days)
    if not pairs:
        return empty
    current = pairs[0]
    params.update({name: str(current[name]) for name in _MODEL_NAMES})
    params.update({name: int(current[name]) for name in ("primary_width", "candidate_width")})
    counts = reader.select(
        f"""SELECT toString(role) AS role, segment_key, uniqExact(text_hash) AS available
FROM embedding_reference
WHERE {_WHERE}{_MODELS}
GROUP BY role, segment_key
ORDER BY role, segment_key""",
        params,
    )
    available = {(str(r["role"]), str(r["segment_key"])): int(r["available"]) for r in counts}
    taken = allocate(available, size)
    found: dict[str, list[dict[str, object]]] = {role: [] for role in ROLES}
    for (role, segment_key), k in taken.items():
        if k == 0:
            continue
        found[role] += reader.select(
            f"""SELECT text_hash, text, segment_key, primary_vector, candidate_vector
FROM embedding_reference
WHERE {_WHERE}{_MODELS} AND role = {{role:String}} AND segment_key = {{segment_key:String}}
ORDER BY text_hash, inserted_at DESC
LIMIT 1 BY text_hash
LIMIT {{k:UInt64}}""",
            {**params, "role": role, "segment_key": segment_key, "k": k},
        )
    return ReferenceSet(
        migration,
        arm,
        size,
        retention_days,
        primary=f"{current['primary_model']}@{current['primary_version']}",
        candidate=f"{current['candidate_model']}@{current['candidate_version']}",
        strata=[
            Stratum(role, segment_key, available[(role, segment_key)], k)
            for (role, segment_key), k in sorted(taken.items())
        ],
        queries=_texts(found["query"]),
        documents=_texts(found["document"]),
        other_models=[
            f"{p['primary_model']}@{p['primary_version']} ({p['primary_width']}) ->"
            f" {p['candidate_model']}@{p['candidate_version']} ({p['candidate_width']}):"
            f" {int(p['texts']):,} texts"
            for p in pairs[1:]
        ],
        models=_models(current),
    )


def _texts(rows: Sequence[Mapping[str, object]]) -> Texts:
    if not rows:
        return Texts()
    return Texts(
        hashes=[str(r["text_hash"]) for r in rows],
        texts=[str(r["text"]) for r in rows],
        segments=[str(r["segment_key"]) for r in rows],
        primary=_matrix([r["primary_vector"] for r in rows]),
        candidate=_matrix([r["candidate_vector"] for r in rows]),
    )


def _matrix(vectors: Sequence[object]) -> npt.NDArray[np.float32]:
    return np.asarray(vectors, dtype=np.float32)  # one width: the query filters on it
