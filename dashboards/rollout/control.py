"""The rollout controller: every change of a candidate's served weight goes through here.

Who changes a weight: a person (`shadowjudge rollout set|rollback`, the pages, the API), a
trigger firing with `rollback: true`, or the step schedule. Each change is, in this order:

1. applied to `Weights` and handed to `publish` — the in-process sidecar's table in the
   embedded run, the control topic with Kafka — so the live path has it at once;
2. written to the store's `rollout` table (who, when, from what weight to what, why). The
   audit comes second on purpose: a rollback must reach the sidecars when the store is away;
   an audit row the store cannot take yet is kept in memory and written by the next tick of
   the rollout worker (a process that dies before then loses it; the log said so).

The step schedule (`rollout.steps`, `rollout.hold`) advances a migration to its next step only
when the current weight has held for `hold`, every trigger rule watching the arm is *clear*
(not holding for lack of evidence, not firing), and the last change was not a rollback: after a
trigger sends the weight to 0, only a person moves it again.

At start (`restore`), the latest change per migration in the store wins; a migration with no
recorded change starts at its configured `rollout.weight` (actor `start`, not audited: it is
the configuration speaking, and the file is its record).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dashboards.analysis.queries import trigger_states
from judge.errors import StoreError
from judge.store.store import Store
from mirror.migrations import MigrationSettings, RolloutSettings
from mirror.rollout import TRIGGER_PREFIX, WeightChange, Weights

log = logging.getLogger("shadowjudge.rollout")

AUDIT_COLUMNS = ("migration", "arm", "weight", "previous", "reason", "actor", "changed_at")
SCHEDULE = "schedule"
START = "start"


class RolloutError(ValueError):
    """A change that cannot be made (unknown migration, no rollout section, a bad weight); the
    message says which and what is known."""


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    migration: str
    arm: str
    weight: float
    previous: float
    actor: str
    reason: str
    changed_at: datetime | None
    steps: tuple[float, ...]
    next_step: float | None
    hold_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "arm": self.arm,
            "weight": self.weight,
            "previous": self.previous,
            "actor": self.actor,
            "reason": self.reason,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "steps": list(self.steps),
            "next_step": self.next_step,
            "hold_s": self.hold_s,
        }


def parse_weight(text: str) -> float:
    """`30%`, `0.3` or `30` (a number above 1 is read as a percentage)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError as exc:
        raise RolloutError(f"weight {text!r}: expected a share like 0.3 or 30%") from exc
    if value > 1 and not raw.endswith("%"):
        value /= 100
    if not 0.0 <= value <= 1.0:
        raise RolloutError(f"weight {text!r}: must be between 0 and 100%")
    return value


class RolloutController:
    """Changes, restores and advances the weights of the migrations that declare `rollout:`."""

    def __init__(
        self,
        migrations: Sequence[MigrationSettings],
        store: Callable[[], Store],
        weights: Weights,
        publish: Callable[[WeightChange], None] | None = None,
    ) -> None:
        self.migrations = {m.name: m for m in migrations}
        self.store = store
        self.weights = weights
        self.publish = publish
        self._unaudited: list[tuple[Any, ...]] = []
        #: Why the last change did not reach the control topic (None: it did, or no topic):
        #: sidecars in other processes keep their old weight until it is set again.
        self.unpublished: str | None = None

    # -- reading --------------------------------------------------------------------------

    def rollout_of(self, migration: str) -> RolloutSettings:
        found = self.migrations.get(migration)
        if found is None:
            known = ", ".join(sorted(self.migrations)) or "none"
            raise RolloutError(f"no migration named {migration!r} (known: {known})")
        if found.rollout is None:
            raise RolloutError(
                f"migration {migration!r} has no rollout: section (add one with the arm that "
                "serves, see README 'Staged rollout')"
            )
        return found.rollout

    def arm_of(self, migration: str) -> str:
        rollout = self.rollout_of(migration)
        arms = self.migrations[migration].arms
        return rollout.arm or arms[0].name

    def status(self) -> list[RolloutStatus]:
        found: list[RolloutStatus] = []
        for name, migration in sorted(self.migrations.items()):
            rollout = migration.rollout
            if rollout is None:
                continue
            change = self.weights.current(name)
            weight = change.weight if change else rollout.weight
            found.append(
                RolloutStatus(
                    migration=name,
                    arm=change.arm if change else self.arm_of(name),
                    weight=weight,
                    previous=change.previous if change else 0.0,
                    actor=change.actor if change else START,
                    reason=change.reason if change else "configured start weight",
                    changed_at=change.changed_at if change else None,
                    steps=tuple(rollout.steps),
                    next_step=next((s for s in rollout.steps if s > weight), None),
                    hold_s=rollout.hold.total_seconds(),
                )
            )
        return found

    # -- changing -------------------------------------------------------------------------

    def set(
        self,
        migration: str,
        weight: float,
        *,
        actor: str,
        reason: str = "",
        now: datetime | None = None,
    ) -> WeightChange:
        """Move `migration`'s weight: applied and published first, then audited."""
        arm = self.arm_of(migration)
        if not 0.0 <= weight <= 1.0:
            raise RolloutError(f"weight {weight!r}: must be between 0 and 1")
        held = self.weights.current(migration)
        rollout = self.rollout_of(migration)
        change = WeightChange(
            migration=migration,
            arm=arm,
            weight=weight,
            previous=held.weight if held else rollout.weight,
            actor=actor,
            reason=reason,
            changed_at=now or datetime.now(UTC),
        )
        self._apply(change)
        self._audit(change)
        log.warning(
            "%s/%s rollout weight %.0f%% -> %.0f%% by %s%s",
            migration,
            arm,
            change.previous * 100,
            weight * 100,
            actor,
            f": {reason}" if reason else "",
        )
        return change

    def rollback(self, migration: str, arm: str, *, actor: str, reason: str) -> None:
        """Weight 0 at once (a trigger's rollback). A migration without `rollout:` serves
        nothing from its candidates anyway: the decision is still recorded."""
        if self.migrations.get(migration) is not None and self.migrations[migration].rollout:
            if self.arm_of(migration) == arm:
                self.set(migration, 0.0, actor=actor, reason=reason)
                return
        self._audit(
            WeightChange(migration, arm, 0.0, 0.0, actor, reason, datetime.now(UTC)),
        )

    def _apply(self, change: WeightChange) -> None:
        self.weights.apply(change)
        self.unpublished = None
        if self.publish is not None:
            try:
                self.publish(change)
            except Exception as exc:  # noqa: BLE001 - the local table has it; say the rest
                self.unpublished = f"{type(exc).__name__}: {exc}".rstrip(": ")
                log.exception("rollout change not published to the control topic")

    def _audit(self, change: WeightChange) -> None:
        row = (
            change.migration,
            change.arm,
            change.weight,
            change.previous,
            change.reason,
            change.actor,
            change.changed_at,
        )
        self._unaudited.append(row)
        if self.flush_audit():
            log.warning("rollout change applied; its audit row waits for the store (it is retried)")

    @property
    def unaudited(self) -> int:
        return len(self._unaudited)

    def flush_audit(self) -> int:
        """Write the audit rows the store could not take yet (it was being opened, or away);
        the rollout worker calls this every tick. Returns how many are still waiting."""
        if not self._unaudited:
            return 0
        try:
            self.store().write("rollout", AUDIT_COLUMNS, list(self._unaudited))
        except StoreError as exc:
            log.debug("%d rollout audit row(s) wait for the store: %s", len(self._unaudited), exc)
            return len(self._unaudited)
        self._unaudited.clear()
        return 0

    # -- start and schedule ---------------------------------------------------------------

    def restore(self) -> int:
        """The latest recorded change per migration, else the configured start weight."""
        names = [n for n, m in self.migrations.items() if m.rollout is not None]
        if not names:
            return 0
        rows = self.store().select(
            """SELECT migration, arm,
    argMax(weight, changed_at) AS weight, argMax(previous, changed_at) AS previous,
    argMax(actor, changed_at) AS actor, argMax(reason, changed_at) AS reason,
    max(changed_at) AS latest
FROM rollout WHERE migration IN {names:Array(String)} GROUP BY migration, arm""",
            {"names": names},
        )
        restored = 0
        for row in rows:
            if row["arm"] != self.arm_of(row["migration"]):
                continue  # a rule on another arm: recorded, never served
            changed_at = row["latest"]
            if changed_at.tzinfo is None:
                changed_at = changed_at.replace(tzinfo=UTC)
            self._apply(
                WeightChange(
                    migration=row["migration"],
                    arm=row["arm"],
                    weight=float(row["weight"]),
                    previous=float(row["previous"]),
                    actor=row["actor"],
                    reason=row["reason"],
                    changed_at=changed_at,
                )
            )
            restored += 1
        for name in names:
            if self.weights.current(name) is None:
                rollout = self.rollout_of(name)
                start = WeightChange(
                    name,
                    self.arm_of(name),
                    rollout.weight,
                    0.0,
                    START,
                    "configured start weight",
                    datetime(1970, 1, 1, tzinfo=UTC),
                )
                self._apply(start)
        return restored

    def advance(self, clear: Callable[[str, str], bool], now: datetime | None = None) -> list[str]:
        """Move each migration whose hold is over, whose triggers are all clear, to its next
        step. Returns what moved, as log lines."""
        moved: list[str] = []
        now = now or datetime.now(UTC)
        for status in self.status():
            if status.next_step is None or status.actor.startswith(TRIGGER_PREFIX):
                continue
            if status.weight == 0.0 and status.actor not in (SCHEDULE, START):
                continue  # a person set 0: they mean it
            since = status.changed_at
            if since is not None and (now - since).total_seconds() < status.hold_s:
                continue
            if not clear(status.migration, status.arm):
                continue
            self.set(
                status.migration,
                status.next_step,
                actor=SCHEDULE,
                reason=f"held {status.weight:.0%} for {status.hold_s:.0f}s, every trigger clear",
                now=now,
            )
            moved.append(f"{status.migration}: {status.weight:.0%} -> {status.next_step:.0%}")
        return moved


def triggers_clear(store: Store, rules: Sequence[str]) -> Callable[[str, str], bool]:
    """A `clear(migration, arm)` that reads the trigger engine's latest decisions
    (`dashboards.analysis.queries.trigger_states`): every rule named must have decided, and
    decided *clear*, on the arm (all traffic)."""
    latest = {(r["migration"], r["arm"], r["rule"]): r["decision"] for r in trigger_states(store)}

    def clear(migration: str, arm: str) -> bool:
        decided = [v for (m, a, _), v in latest.items() if m == migration and a == arm]
        if not rules or not decided:
            return not rules  # no rule at all: nothing to wait for
        return all(v == "clear" for v in decided)

    return clear
