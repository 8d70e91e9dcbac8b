"""Prometheus metrics of the shadow runner (its own registry, like the sidecar's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class RunnerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter("shadowjudge_runner_consumed", "Captured calls read.", registry=r)
        self.selected = Counter(
            "shadowjudge_runner_selected",
            "Captured calls selected by a migration's sampling.",
            ["migration"],
            registry=r,
        )
        self.pairs = Counter(
            "shadowjudge_runner_pairs",
            "Pairs the bus acknowledged, by outcome (ok, or the error kind: http, skipped...).",
            ["migration", "arm", "outcome"],
            registry=r,
        )
        self.served = Counter(
            "shadowjudge_runner_served",
            "Calls a candidate served (staged rollout), paired after a shadow call to the primary.",
            ["migration"],
            registry=r,
        )
        self.skipped = Counter(
            "shadowjudge_runner_skipped",
            "Arm calls not made, by reason (spend cap, untranslatable, ...).",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "shadowjudge_runner_dead_letters",
            "Records the DLQ acknowledged, by kind (poison, runner, delivery).",
            ["kind"],
            registry=r,
        )
        self.offset_resets = Counter(
            "shadowjudge_runner_offset_resets",
            "Positions moved because they were not in the log (replaced, trimmed).",
            registry=r,
        )
        self.offsets_skipped = Counter(
            "shadowjudge_runner_offsets_skipped",
            "Offsets of shadow.calls never read because the log no longer held them.",
            registry=r,
        )
        self.abandoned = Counter(
            "shadowjudge_runner_abandoned",
            "Records still in work at the drain deadline, left uncommitted for a replay.",
            registry=r,
        )
        self.publish_retries = Counter(
            "shadowjudge_runner_publish_retries", "Bus errors met while publishing.", registry=r
        )
        self.spend = Gauge(
            "shadowjudge_runner_spend_usd",
            "Today's (UTC) priced spend of this runner, per migration.",
            ["migration"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
