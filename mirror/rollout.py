"""Staged rollout, the contract: the weight of live traffic a candidate arm serves, and how a
change travels.

A `WeightChange` is one decision — who (a person through the CLI or the pages, a trigger's
rollback, the step schedule), when, which migration and arm, from what weight to what. It is
published on the control topic (`bus.topics.control`, keyed by migration, so a compacted
topic keeps the latest per migration; in the embedded run the in-process bus carries it) and
written to the store's `rollout` table (the audit trail). Sidecars read only the topic: the
store being away never stops a sidecar from serving its last known weights.

`Weights` is what a sidecar holds: the latest change per migration, applied in order of
`changed_at` (an older change arriving late never undoes a newer one). `serves` is the sticky
decision: a hash of (migration, sticky key) compared with the weight, the same hash sampling
uses (`mirror.sampling.hash_point`'s BLAKE2b construction, salted apart from it), so
one user gets one model while the weight stands, raising the weight only adds users, and
every sidecar instance decides the same without sharing state.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

_SCALE = float(1 << 64)
#: Actors that are not a person: `trigger:<rule>`, `schedule`, `start` (the configured
#: initial weight, applied when no change is known).
TRIGGER_PREFIX = "trigger:"


@dataclass(frozen=True, slots=True)
class WeightChange:
    """One rollout decision. `weight` and `previous` are shares in [0, 1]."""

    migration: str
    arm: str
    weight: float
    previous: float
    actor: str
    reason: str
    changed_at: datetime

    def __post_init__(self) -> None:
        for name in ("weight", "previous"):
            value = getattr(self, name)
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if self.changed_at.tzinfo is None:
            raise ValueError("changed_at must be timezone-aware")

    def encode(self) -> bytes:
        data = asdict(self)
        data["changed_at"] = self.changed_at.astimezone(UTC).isoformat()
        return orjson.dumps(data)

    @classmethod
    def decode(cls, raw: bytes) -> WeightChange:
        """From the control topic; `ValueError` on anything that is not a change."""
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            return cls(
                migration=str(data["migration"]),
                arm=str(data["arm"]),
                weight=float(data["weight"]),
                previous=float(data.get("previous", 0.0)),
                actor=str(data.get("actor", "")),
                reason=str(data.get("reason", "")),
                changed_at=datetime.fromisoformat(str(data["changed_at"])),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or bad field: {exc}") from exc


def sticky_point(migration: str, key: str) -> float:
    """Where `key` falls in [0, 1) for `migration`'s rollout (stable across processes)."""
    digest = hashlib.blake2b(
        b"rollout\0"
        + migration.encode("utf-8", "surrogatepass")
        + b"\0"
        + key.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Weights:
    """The latest `WeightChange` per migration, safe to read from any thread.

    Reads are one dict lookup (the live path calls `current` per request); writers replace
    the entry under a lock. `version` counts applied changes (a test or a page waits on it).
    """

    def __init__(self, changes: Iterable[WeightChange] = ()) -> None:
        self._current: dict[str, WeightChange] = {}
        self._lock = threading.Lock()
        self.version = 0
        for change in changes:
            self.apply(change)

    def apply(self, change: WeightChange) -> bool:
        """Take `change` unless a newer one for its migration is already held."""
        with self._lock:
            held = self._current.get(change.migration)
            if held is not None and held.changed_at > change.changed_at:
                return False
            self._current[change.migration] = change
            self.version += 1
            return True

    def current(self, migration: str) -> WeightChange | None:
        return self._current.get(migration)

    def all(self) -> list[WeightChange]:
        return sorted(self._current.values(), key=lambda c: c.migration)

    def serves(self, migration: str, key: str) -> str | None:
        """The arm that serves this call's sticky `key`, or None (the primary serves it)."""
        change = self._current.get(migration)
        if change is None or change.weight <= 0.0:
            return None
        if change.weight >= 1.0 or sticky_point(migration, key) < change.weight:
            return change.arm
        return None
