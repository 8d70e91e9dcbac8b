"""Prometheus metrics of the shadow runner (its own registry, like the sidecar's)."""

from __future__ import annotations

from functools import cached_property

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from mirror.embeddings.metrics import EmbeddingMetrics


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

        self.reference_texts = Counter(
            "shadowjudge_runner_embedding_reference_texts",
            "Reference-set texts sent with their pairs, both models' vectors included.",
            ["migration", "arm"],
            registry=r,
        )
        self.reference_left_out = Counter(
            "shadowjudge_runner_embedding_reference_left_out",
            "Reference-set entrants not sent, by reason (message size, primary failed, ...).",
            ["migration", "arm", "reason"],
            registry=r,
        )

    @cached_property
    def embedding(self) -> EmbeddingMetrics:
        """The embedding cache's and client's counters, on this registry (made on first use:
        a runner without embedding migrations shows none)."""
        return EmbeddingMetrics(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
