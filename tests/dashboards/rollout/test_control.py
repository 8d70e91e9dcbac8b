"""The rollout controller on a real chDB store: changes applied before they are audited,
rollbacks by triggers, the step schedule's rules, and restoring at start."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboards.rollout.control import (
    SCHEDULE,
    RolloutController,
    RolloutError,
    parse_weight,
    triggers_clear,
)
from judge.store.store import Store
from mirror.migrations import MigrationSettings
from mirror.rollout import Weights
from tests.chdb import fresh_store

#: A day ago: changes made "now" (a trigger's rollback) come after the scripted ones.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


@pytest.fixture
def store(chdb_dir: Path) -> Iterator[Store]:
    """A migrated, empty database of its own."""
    with fresh_store(chdb_dir, "r") as opened:
        yield opened


def migration(**rollout: Any) -> MigrationSettings:
    return MigrationSettings.model_validate(
        {
            "name": "m",
            "arms": [{"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5"}],
            "rollout": {"steps": [0.05, 0.25, 0.5, 1.0], "hold": "10m", **rollout},
        }
    )


def audit(store: Store) -> list[dict[str, Any]]:
    return store.select(
        "SELECT arm, weight, previous, actor, reason FROM rollout WHERE migration = 'm' "
        "ORDER BY changed_at"
    )


def test_weights_parse_as_shares_or_percentages() -> None:
    assert parse_weight("30%") == pytest.approx(0.3)
    assert parse_weight("0.3") == pytest.approx(0.3)
    assert parse_weight("30") == pytest.approx(0.3)
    with pytest.raises(RolloutError, match="between 0 and 100%"):
        parse_weight("130%")
    with pytest.raises(RolloutError, match="expected a share"):
        parse_weight("half")


def test_a_change_is_applied_published_and_audited(store: Store) -> None:
    weights, published = Weights(), []
    control = RolloutController([migration()], lambda: store, weights, published.append)
    control.set("m", 0.3, actor="cli:ana", reason="first step", now=T0)
    assert weights.current("m") is not None and weights.current("m").weight == 0.3  # type: ignore[union-attr]
    assert [c.weight for c in published] == [0.3]
    assert audit(store) == [
        {
            "arm": "sonnet",
            "weight": 0.3,
            "previous": 0.0,
            "actor": "cli:ana",
            "reason": "first step",
        }
    ]
    control.rollback("m", "sonnet", actor="trigger:equivalence-low", reason="fired")
    assert weights.current("m") is not None and weights.current("m").weight == 0.0  # type: ignore[union-attr]
    assert not any(weights.serves("m", f"user-{i}") for i in range(100))
    assert [r["previous"] for r in audit(store)] == [0.0, 0.3]


def test_unknown_names_and_missing_sections_are_refused(store: Store) -> None:
    plain = MigrationSettings.model_validate(
        {"name": "p", "arms": [{"name": "a", "provider": "openai", "model": "gpt-4.1"}]}
    )
    control = RolloutController([migration(), plain], lambda: store, Weights())
    with pytest.raises(RolloutError, match=r"no migration named 'x' \(known: m, p\)"):
        control.set("x", 0.1, actor="t")
    with pytest.raises(RolloutError, match="has no rollout: section"):
        control.set("p", 0.1, actor="t")


def test_a_change_stands_when_the_store_is_away() -> None:
    def away() -> Store:
        from judge.errors import StoreUnavailableError

        raise StoreUnavailableError("gone", condition="unreachable")

    weights = Weights()
    RolloutController([migration()], away, weights).set("m", 0.5, actor="t")
    assert weights.current("m") is not None and weights.current("m").weight == 0.5  # type: ignore[union-attr]


def test_the_schedule_waits_for_the_hold_and_clear_triggers(store: Store) -> None:
    weights = Weights()
    control = RolloutController([migration()], lambda: store, weights)
    control.restore()  # nothing recorded: the configured start weight, 0
    assert control.advance(lambda m, a: False, now=T0) == []  # triggers not clear
    assert control.advance(lambda m, a: True, now=T0) == ["m: 0% -> 5%"]
    assert control.advance(lambda m, a: True, now=T0 + timedelta(minutes=5)) == []  # holding
    assert control.advance(lambda m, a: True, now=T0 + timedelta(minutes=10)) == ["m: 5% -> 25%"]
    control.rollback("m", "sonnet", actor="trigger:refusals-up", reason="fired")
    assert control.advance(lambda m, a: True, now=T0 + timedelta(hours=5)) == []  # a person next
    assert [r["actor"] for r in audit(store)] == [SCHEDULE, SCHEDULE, "trigger:refusals-up"]


def test_restore_takes_the_latest_recorded_change(store: Store) -> None:
    first = RolloutController([migration()], lambda: store, Weights())
    first.set("m", 0.25, actor="cli", now=T0)
    first.set("m", 0.5, actor="cli", now=T0 + timedelta(minutes=1))
    # a rule firing on an arm that does not serve is recorded, and not restored as the weight
    first.rollback("m", "haiku", actor="trigger:eq", reason="fired")
    again = Weights()
    assert RolloutController([migration(weight=0.1)], lambda: store, again).restore() == 1
    assert again.current("m") is not None and again.current("m").weight == 0.5  # type: ignore[union-attr]


def test_triggers_clear_needs_every_rule_decided_clear(store: Store) -> None:
    columns = ("decided_at", "migration", "arm", "rule", "segment", "window_start", "window_end")
    columns += ("n", "estimate", "lower", "upper", "baseline", "decision", "config_hash")

    def decided(rule: str, decision: str, at: datetime) -> tuple[Any, ...]:
        return (at, "m", "sonnet", rule, "*", at, at, 100, 0.9, 0.8, 0.95, 0.9, decision, "")

    assert triggers_clear(store, ["eq"])("m", "sonnet") is False  # nothing decided yet
    assert triggers_clear(store, [])("m", "sonnet") is True  # no rules: nothing to wait for
    store.write("trigger_decisions", columns, [decided("eq", "clear", T0)])
    store.write("trigger_decisions", columns, [decided("ref", "hold", T0)])
    assert triggers_clear(store, ["eq", "ref"])("m", "sonnet") is False
    store.write("trigger_decisions", columns, [decided("ref", "clear", T0 + timedelta(1))])
    assert triggers_clear(store, ["eq", "ref"])("m", "sonnet") is True


def test_a_change_the_control_topic_refused_says_so(store: Store) -> None:
    def broker_away(change: object) -> None:
        raise TimeoutError("no ack in 5s")

    weights = Weights()
    control = RolloutController([migration()], lambda: store, weights, broker_away)
    control.set("m", 0.25, actor="t")
    assert weights.current("m") is not None and control.unpublished == "TimeoutError: no ack in 5s"
    assert audit(store)[-1]["weight"] == 0.25  # applied here and audited all the same
