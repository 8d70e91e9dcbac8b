"""The trigger engine: every rule on every arm and segment it watches, each `interval_s`.

One evaluation reads the window's aggregates (one query per window and segment kind, plus one
t-digest merge per latency rule and arm), decides each target with `dashboards.triggers.rules`,
writes one audit row per target to `trigger_decisions` (n, estimate, interval, the limit in
`baseline`, the decision, the configuration's hash) and moves the alert state:

- a target whose decision is *fire* is pending; once it has fired for the rule's `for`, it is
  firing: the alert goes out (and, with `rollback: true`, the arm's rollout weight is set to 0
  in `rollout`). A flapping signal that stops firing inside `for` sends nothing;
- a firing target stays firing until its decision has not been *fire* for `keep_firing_for`,
  then a resolved message goes out;
- while firing, the alert is sent again at most once per sink's `repeat_interval`.

The alert state lives in the evaluating process, and is picked up from the audit rows when a
process starts (as Prometheus restores its alerts' `for` state): a target whose latest decision
in the last `RESTORE_LOOKBACK` was *fire* is pending since the first *fire* of that run, and
firing (sent already, so neither sent again before `repeat_interval` nor rolled back a second
time) when that run lasted `for`. A target that had stopped firing starts afresh: its resolved
message, due inside `keep_firing_for`, is not sent (Alertmanager resolves an alert that is no
longer sent by itself). One process per store evaluates
(`triggers.evaluate`): with chDB that is the process holding the directory; with a ClickHouse
server and several processes, set it on one only (docs/triggers.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, Protocol
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Gauge

from dashboards.analysis import queries
from dashboards.analysis.queries import Reader, span
from dashboards.analysis.service import latest_version
from dashboards.analysis.window import Window, parse_window
from dashboards.triggers.alerts import AlertEvent, Sink
from dashboards.triggers.config import Metric, RuleSettings, TriggerSettings
from dashboards.triggers.rules import (
    Decision,
    Finding,
    paired_rate_difference,
    quantile_ratio,
    rate_against_level,
    rate_difference,
)
from judge.errors import StoreError

log = logging.getLogger("shadowjudge.triggers")

DECISION_COLUMNS = (
    "decided_at",
    "migration",
    "arm",
    "rule",
    "segment",
    "window_start",
    "window_end",
    "n",
    "estimate",
    "lower",
    "upper",
    "baseline",
    "decision",
    "config_hash",
)
_GAUGE_VALUE = {Decision.CLEAR: 0.0, Decision.HOLD: 1.0, Decision.FIRE: 2.0}
#: How far back a starting evaluator reads its predecessor's decisions (module docstring).
RESTORE_LOOKBACK = timedelta(days=7)
#: Each target whose latest decision since {since} is fire: the first and last fire of that run.
_RESTORE = """SELECT migration, arm, rule, segment,
    min(d.decided_at) AS run_start, max(d.decided_at) AS last_fire
FROM trigger_decisions AS d
INNER JOIN (
    SELECT migration, arm, rule, segment,
        maxIf(decided_at, decision != 'fire') AS last_other,
        argMax(decision, decided_at) AS latest
    FROM trigger_decisions
    WHERE decided_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
    GROUP BY migration, arm, rule, segment
    HAVING latest = 'fire'
) AS o USING (migration, arm, rule, segment)
WHERE d.decided_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
    AND d.decision = 'fire' AND d.decided_at > o.last_other
GROUP BY migration, arm, rule, segment"""


class Store(Reader, Protocol):
    def write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...


@dataclass(frozen=True)
class Evaluation:
    rule: RuleSettings
    migration: str
    arm: str
    segment: str
    window: Window
    finding: Finding

    def as_dict(self) -> dict[str, Any]:
        f = self.finding
        return {
            "rule": self.rule.name,
            "metric": self.rule.metric.value,
            "migration": self.migration,
            "arm": self.arm,
            "segment": self.segment,
            "decision": f.decision.value,
            "n": f.n,
            "estimate": f.estimate,
            "lower": f.lower,
            "upper": f.upper,
            "limit": f.limit,
            "window": {"since": self.window.since, "until": self.window.until},
        }


@dataclass
class _State:
    pending_since: datetime | None = None
    firing_since: datetime | None = None
    last_fire: datetime | None = None
    sent: dict[str, datetime] = field(default_factory=dict)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def overall(evaluations: Sequence[Evaluation]) -> Decision:
    """Fire if any fires, else hold if any holds, else clear. No evaluation at all (no rule
    applies, a misspelt migration, no pairs in the window) is hold: no evidence is not a pass."""
    decisions = {e.finding.decision for e in evaluations}
    if Decision.FIRE in decisions:
        return Decision.FIRE
    if Decision.HOLD in decisions or not decisions:
        return Decision.HOLD
    return Decision.CLEAR


class Evaluator:
    def __init__(
        self,
        settings: TriggerSettings,
        source: Callable[[], Store],
        *,
        sinks: Sequence[Sink] = (),
        base_url: str = "http://127.0.0.1:8701",
        config_hash: str = "",
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rollback: Callable[[str, str, str, str], None] | None = None,
    ) -> None:
        """`rollback(migration, arm, actor, reason)` sends a firing `rollback: true` rule's
        arm to weight 0 (the rollout controller: applied, published, audited); without it the
        decision is only recorded in `rollout`."""
        self.settings = settings
        self.rollback = rollback
        self.source = source
        self.sinks = {s.name: s for s in sinks}
        self.base_url = base_url.rstrip("/")
        self.config_hash = config_hash
        self.clock = clock
        self.states: dict[tuple[str, str, str, str], _State] = {}
        self._restored = False
        self.registry = registry or CollectorRegistry()
        labels = ("migration", "arm", "rule", "segment")
        self.decision_gauge = Gauge(
            "shadowjudge_trigger_decision",
            "Latest decision of a trigger rule: 0 clear, 1 hold, 2 fire",
            labels,
            registry=self.registry,
        )
        self.firing_gauge = Gauge(
            "shadowjudge_trigger_firing",
            "1 while a rule's alert is firing (after its `for`)",
            labels,
            registry=self.registry,
        )

    # -- one evaluation ----------------------------------------------------------------------

    def evaluate(
        self, *, migration: str | None = None, record: bool = True, notify: bool = True
    ) -> list[Evaluation]:
        store = self.source()
        now = self.clock()
        found: list[Evaluation] = []
        cache: dict[tuple[str, bool], list[dict[str, Any]]] = {}
        for rule in self.settings.rules:
            window = parse_window(rule.window, now=now)
            found.extend(self._rule(store, rule, window, migration, cache))
        if notify and not self._restored:  # before this evaluation's own rows are written
            self.restore(store, now)
        if record and found:
            store.write("trigger_decisions", DECISION_COLUMNS, [self._row(e, now) for e in found])
        for evaluation in found:
            key = self._key(evaluation)
            self.decision_gauge.labels(*key).set(_GAUGE_VALUE[evaluation.finding.decision])
        if notify:
            self.advance(found, now, store)
        return found

    def restore(self, store: Store, now: datetime) -> int:
        """Take up the alert state a previous process left in `trigger_decisions` (module
        docstring); the number of targets taken up. Called once, before the first alerts."""
        self._restored = True
        since = int((now - RESTORE_LOOKBACK).timestamp() * 1000)
        try:
            rows = store.select(_RESTORE, {"since": since})
        except StoreError as exc:  # the store is away: start afresh, as before
            log.warning("trigger alert state not restored: %s", exc)
            return 0
        rules = {r.name: r for r in self.settings.rules}
        for row in rows:
            rule = rules.get(row["rule"])
            key = (row["migration"], row["arm"], row["rule"], row["segment"])
            if rule is None or key in self.states:
                continue
            started, last = _utc(row["run_start"]), _utc(row["last_fire"])
            state = self.states[key] = _State(pending_since=started, last_fire=last)
            if last - started >= rule.for_:
                state.firing_since = started
                state.sent = {sink.name: last for sink in self._sinks_of(rule)}
                self.firing_gauge.labels(*key).set(1.0)
        if rows:
            log.info("trigger alert state restored for %d target(s)", len(rows))
        return len(rows)

    def _rule(
        self,
        store: Store,
        rule: RuleSettings,
        window: Window,
        migration: str | None,
        cache: dict[tuple[str, bool], list[dict[str, Any]]],
    ) -> list[Evaluation]:
        labelled = [s for s in rule.segments if s != "*"]
        rows = list(self._stats(store, window, False, cache)) if "*" in rule.segments else []
        if labelled:
            for row in self._stats(store, window, True, cache):
                key, _, value = row["segment"].partition("=")
                if key in labelled or row["segment"] in labelled:
                    rows.append(row)
        rows = [
            r
            for r in rows
            if (migration is None or r["migration"] == migration)
            and any(fnmatchcase(r["migration"], m) for m in rule.migrations)
        ]
        by_migration: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_migration.setdefault(r["migration"], []).append(r)
        versions = {m: latest_version(mine) for m, mine in by_migration.items()}
        rows = [r for r in rows if r["judge_version"] == versions[r["migration"]]]
        targets = [
            r
            for r in rows
            if r["arm_kind"] != "noise" and any(fnmatchcase(r["arm"], a) for a in rule.arms)
        ]
        segments = {(r["migration"], r["segment"]) for r in targets}
        per_migration: dict[str, int] = {}
        for m, _ in segments:
            per_migration[m] = per_migration.get(m, 0) + 1
        found = []
        for row in targets:
            noise = next(
                (
                    r
                    for r in rows
                    if r["migration"] == row["migration"]
                    and r["segment"] == row["segment"]
                    and r["arm_kind"] == "noise"
                ),
                None,
            )
            alpha = rule.alpha / per_migration[row["migration"]]  # Bonferroni over segments
            finding = self._finding(store, rule, window, row, noise, alpha)
            found.append(
                Evaluation(rule, row["migration"], row["arm"], row["segment"], window, finding)
            )
        return found

    def _stats(
        self,
        store: Store,
        window: Window,
        by_segment: bool,
        cache: dict[tuple[str, bool], list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        key = (window.label, by_segment)
        if key not in cache:
            cache[key] = queries.arm_stats(store, window, by_segment=by_segment)
            if not by_segment:
                for row in cache[key]:
                    row["segment"] = "*"
        return cache[key]

    def _finding(
        self,
        store: Store,
        rule: RuleSettings,
        window: Window,
        row: dict[str, Any],
        noise: dict[str, Any] | None,
        alpha: float,
    ) -> Finding:
        metric, n_min = rule.metric, rule.min_pairs
        if metric is Metric.REFUSAL_DIFFERENCE:
            pairs = int(row["pairs"])
            decision, lower, upper = paired_rate_difference(
                int(row["refusal_candidate_only"]),
                int(row["refusal_primary_only"]),
                pairs,
                margin=rule.margin,
                alpha=alpha,
                min_pairs=n_min,
            )
            estimate = (int(row["refusals_candidate"]) - int(row["refusals_primary"])) / max(
                pairs, 1
            )
            return _finding(decision, pairs, estimate, lower, upper, rule.margin)
        if metric in (Metric.LATENCY_RATIO, Metric.TTFT_RATIO):
            return self._quantile_finding(store, rule, window, row, noise, alpha)
        if metric is Metric.COST_RATIO:
            return _cost_finding(rule, row, noise)
        hits, n, bad_above = _rate(metric, row)
        if rule.baseline == "noise" or (metric is Metric.ERROR_RATE and rule.threshold is None):
            if rule.baseline == "noise":
                if noise is None:
                    return Finding(Decision.HOLD, 0, float("nan"), 0.0, 1.0, rule.margin)
                base_hits, base_n, _ = _rate(metric, noise)
            else:  # errors against the primary's own errors on the same calls
                base_hits, base_n = int(row["primary_errors"]), int(row["pairs"])
            decision, lower, upper = rate_difference(
                hits,
                n,
                base_hits,
                base_n,
                margin=rule.margin,
                bad_above=bad_above,
                alpha=alpha,
                min_pairs=n_min,
            )
            estimate = hits / max(n, 1) - base_hits / max(base_n, 1)
            limit = rule.margin if bad_above else -rule.margin
            return _finding(decision, min(n, base_n), estimate, lower, upper, limit)
        assert rule.threshold is not None
        decision, lower, upper = rate_against_level(
            hits, n, level=rule.threshold, bad_above=bad_above, alpha=alpha, min_pairs=n_min
        )
        return _finding(decision, n, hits / max(n, 1), lower, upper, rule.threshold)

    def _quantile_finding(
        self,
        store: Store,
        rule: RuleSettings,
        window: Window,
        row: dict[str, Any],
        noise: dict[str, Any] | None,
        alpha: float,
    ) -> Finding:
        ttft = rule.metric is Metric.TTFT_RATIO
        column = "ttft_ms_q" if ttft else "latency_ms_q"
        if rule.baseline == "noise":
            if noise is None:
                return Finding(Decision.HOLD, 0, float("nan"), 0.0, float("inf"), 1 + rule.margin)
            base_row, base_side = noise, "candidate"
        else:
            base_row, base_side = row, "primary"

        def count(r: dict[str, Any], side: str) -> int:
            if ttft:
                return int(r[f"{side}_ttft_n"])
            return int(r["pairs"]) - int(r[f"{side}_errors"])

        def quantiles(r: dict[str, Any], side: str) -> Callable[[Sequence[float]], Sequence[float]]:
            return lambda levels: _digest(store, window, r, f"{side}_{column}", levels)

        return quantile_ratio(
            quantiles(row, "candidate"),
            count(row, "candidate"),
            quantiles(base_row, base_side),
            count(base_row, base_side),
            level=rule.level,
            margin=rule.margin,
            alpha=alpha,
            min_pairs=rule.min_pairs,
        )

    # -- audit, alerts -----------------------------------------------------------------------

    def _row(self, e: Evaluation, now: datetime) -> tuple[Any, ...]:
        f = e.finding
        return (
            now,
            e.migration,
            e.arm,
            e.rule.name,
            e.segment,
            e.window.since,
            e.window.until,
            f.n,
            _finite(f.estimate),
            _finite(f.lower),
            _finite(f.upper),
            _finite(f.limit),
            f.decision.value,
            self.config_hash,
        )

    @staticmethod
    def _key(e: Evaluation) -> tuple[str, str, str, str]:
        return (e.migration, e.arm, e.rule.name, e.segment)

    def advance(self, evaluations: Sequence[Evaluation], now: datetime, store: Store) -> None:
        """Move each target's alert state by one evaluation; send what changed."""
        outgoing: dict[str, list[AlertEvent]] = {}
        for e in evaluations:
            state = self.states.setdefault(self._key(e), _State())
            event = self._step(e, state, now, store)
            if event is None:
                if state.firing_since is not None:
                    self._repeat(e, state, now, outgoing)
                continue
            for sink in self._sinks_of(e.rule):
                outgoing.setdefault(sink.name, []).append(event)
                state.sent[sink.name] = now
            self.firing_gauge.labels(*self._key(e)).set(1.0 if event.status == "firing" else 0.0)
        for name, events in outgoing.items():
            self.sinks[name].send(events, self.base_url)

    def _step(self, e: Evaluation, state: _State, now: datetime, store: Store) -> AlertEvent | None:
        rule = e.rule
        if e.finding.decision is Decision.FIRE:
            state.last_fire = now
            state.pending_since = state.pending_since or now
            if state.firing_since is None and now - state.pending_since >= rule.for_:
                state.firing_since = state.pending_since  # the alert's start, as Prometheus
                if rule.rollback:
                    self._roll_back(e, store, now)
                return self._event(e, "firing", state.pending_since, None)
            return None
        state.pending_since = None
        if state.firing_since is not None and state.last_fire is not None:
            if now - state.last_fire >= rule.keep_firing_for:
                started, state.firing_since = state.firing_since, None
                state.sent.clear()
                return self._event(e, "resolved", started, now)
        return None

    def _repeat(
        self, e: Evaluation, state: _State, now: datetime, outgoing: dict[str, list[AlertEvent]]
    ) -> None:
        for sink in self._sinks_of(e.rule):
            last = state.sent.get(sink.name)
            if last is None or now - last >= sink.repeat_interval:
                assert state.firing_since is not None
                outgoing.setdefault(sink.name, []).append(
                    self._event(e, "firing", state.firing_since, None)
                )
                state.sent[sink.name] = now

    def _sinks_of(self, rule: RuleSettings) -> list[Sink]:
        names = rule.alerts if rule.alerts is not None else tuple(self.sinks)
        return [self.sinks[n] for n in names if n in self.sinks]

    def _event(
        self, e: Evaluation, status: str, starts: datetime, ends: datetime | None
    ) -> AlertEvent:
        url = f"{self.base_url}/migrations/{quote(e.migration, safe='')}?window={e.rule.window}"
        if e.segment != "*":
            url += f"&segment={quote(e.segment, safe='')}"
        return AlertEvent(
            status,
            e.rule.name,
            e.rule.metric.value,
            e.migration,
            e.arm,
            e.segment,
            e.finding,
            starts,
            ends,
            url,
            e.rule.rollback,
        )

    def _roll_back(self, e: Evaluation, store: Store, now: datetime) -> None:
        reason = (
            f"trigger {e.rule.name} fired: {e.finding.estimate:.4g} against {e.finding.limit:.4g}"
        )
        actor = f"trigger:{e.rule.name}"
        if self.rollback is not None:
            self.rollback(e.migration, e.arm, actor, reason)
        else:
            store.write(
                "rollout",
                ("migration", "arm", "weight", "reason", "actor", "changed_at"),
                [(e.migration, e.arm, 0.0, reason, actor, now)],
            )
        log.warning("%s/%s rolled back: %s", e.migration, e.arm, reason)


# -- helpers -----------------------------------------------------------------------------------


def _rate(metric: Metric, row: dict[str, Any]) -> tuple[int, int, bool]:
    """(hits, n, bad when above) of a rate metric."""
    if metric is Metric.EQUIVALENCE_RATE:
        return int(row["verdict_equivalent"]), int(row["judged"]), False
    if metric is Metric.WORSE_RATE:
        return int(row["verdict_candidate_worse"]), int(row["judged"]), True
    if metric is Metric.FORMAT_DRIFT_RATE:
        return int(row["format_drifts"]), int(row["pairs"]), True
    # a skipped arm (untranslatable, no key, spend cap) is our setup, not the candidate failing
    skipped = int(row["candidate_error_kinds"].get("skipped", 0))
    return int(row["candidate_errors"]) - skipped, int(row["pairs"]) - skipped, True


def _finding(
    decision: Any, n: int, estimate: float, lower: Any, upper: Any, limit: float
) -> Finding:
    return Finding(Decision(str(decision)), n, float(estimate), float(lower), float(upper), limit)


def _cost_finding(rule: RuleSettings, row: dict[str, Any], noise: dict[str, Any] | None) -> Finding:
    base, side = (noise, "candidate") if rule.baseline == "noise" else (row, "primary")
    limit = 1 + rule.margin
    if base is None or not row["candidate_priced"] or not base[f"{side}_priced"]:
        return Finding(Decision.HOLD, 0, float("nan"), float("nan"), float("nan"), limit)
    mine = float(row["candidate_cost_usd_sum"]) / int(row["candidate_priced"])
    theirs = float(base[f"{side}_cost_usd_sum"]) / int(base[f"{side}_priced"])
    n = min(int(row["candidate_priced"]), int(base[f"{side}_priced"]))
    if theirs <= 0:
        return Finding(Decision.HOLD, n, float("nan"), float("nan"), float("nan"), limit)
    ratio = mine / theirs
    decision = (
        Decision.HOLD
        if n < rule.min_pairs
        else (Decision.FIRE if ratio > limit else Decision.CLEAR)
    )
    return Finding(decision, n, ratio, ratio, ratio, limit)


def _digest(
    store: Reader, window: Window, row: dict[str, Any], column: str, levels: Sequence[float]
) -> list[float]:
    """One side's t-digest merged over the window, read at `levels`."""
    safe = ", ".join(f"{min(max(float(q), 0.0), 1.0):.10f}" for q in levels)
    sql = f"""SELECT quantilesTDigestMerge({safe})({column}) AS q
FROM comparison_stats_hourly
WHERE migration = {{migration:String}} AND arm = {{arm:String}}
    AND judge_version = {{judge_version:String}} AND segment = {{segment:String}}
    AND hour >= toDateTime({{since:Int64}}, 'UTC') AND hour < toDateTime({{until:Int64}}, 'UTC')"""
    params = {
        "migration": row["migration"],
        "arm": row["arm"],
        "judge_version": row["judge_version"],
        "segment": row["segment"],
        **span(window),
    }
    found = store.select(sql, params)
    return [float(v) for v in found[0]["q"]] if found else [float("nan")] * len(levels)


def _finite(value: float) -> float:
    return value if value == value and abs(value) != float("inf") else 0.0
