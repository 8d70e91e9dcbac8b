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
            "Pairs published, by outcome (ok, or the error kind: http, skipped, ...).",
            ["migration", "arm", "outcome"],
            registry=r,
        )
        self.skipped = Counter(
            "shadowjudge_runner_skipped",
            "Arm calls not made, by reason (spend cap, untranslatable, ...).",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "shadowjudge_runner_dead_letters", "Records sent to the DLQ.", registry=r
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
