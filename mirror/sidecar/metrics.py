"""Prometheus metrics of the sidecar itself, served at `GET /metrics`.

Each sidecar owns its registry (no process-global state), so two sidecars in one test process
do not share counters. Every capture ends in exactly one of `captured_total` (accepted by the
bus) or `dropped_total{reason}`; the dashboards and the tests rely on that bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

DROP_QUEUE_FULL = "queue_full"
DROP_PUBLISH_ERROR = "publish_error"
DROP_CAPTURE_ERROR = "capture_error"
DROP_SHUTDOWN = "shutdown"
DROP_REASONS = (DROP_QUEUE_FULL, DROP_PUBLISH_ERROR, DROP_CAPTURE_ERROR, DROP_SHUTDOWN)

#: Why a call chosen for a candidate arm (staged rollout) was served by the primary after all,
#: and `broken`: the candidate failed after its answer began (the app's connection is cut, as
#: a provider breaking mid-answer would); `internal`: a bug of ours, caught.
FALLBACK_REASONS = (
    "error_status",
    "unreachable",
    "timeout",
    "untranslatable",
    "no_key",
    "broken",
    "internal",
)

#: Upstream latency buckets in seconds: LLM calls run from tens of ms to minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "shadowjudge_sidecar_requests",
            "Requests proxied, by API (or 'other') and upstream status class.",
            ["api", "status"],
            registry=self.registry,
        )
        self.captured = Counter(
            "shadowjudge_sidecar_captured",
            "Captured calls accepted by the bus.",
            registry=self.registry,
        )
        self.dropped = Counter(
            "shadowjudge_sidecar_dropped",
            "Captured calls lost, by reason; the app never sees these.",
            ["reason"],
            registry=self.registry,
        )
        self.publish_errors = Counter(
            "shadowjudge_sidecar_publish_errors",
            "Bus errors met by the publisher (sends and connection attempts).",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "shadowjudge_sidecar_queue_depth",
            "Captured calls waiting to be published.",
            registry=self.registry,
        )
        self.queue_bytes = Gauge(
            "shadowjudge_sidecar_queue_bytes",
            "Bytes held by captured calls waiting to be published.",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "shadowjudge_sidecar_upstream_errors",
            "Upstream connection failures answered with a 502.",
            ["provider"],
            registry=self.registry,
        )
        self.stale_retries = Counter(
            "shadowjudge_sidecar_upstream_stale_retries",
            "Requests sent again on a fresh connection after a kept-alive one closed unanswered.",
            ["provider"],
            registry=self.registry,
        )
        self.refused = Counter(
            "shadowjudge_sidecar_refused",
            "Requests the sidecar answered itself instead of forwarding (limits, framing).",
            ["status"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "shadowjudge_sidecar_upstream_latency_seconds",
            "Time from sending the request upstream to the end of its answer.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rollout_served = Counter(
            "shadowjudge_rollout_served",
            "Calls answered to the app by a candidate arm (staged rollout).",
            ["migration", "arm"],
            registry=self.registry,
        )
        self.rollout_fallbacks = Counter(
            "shadowjudge_rollout_fallbacks",
            "Calls chosen for a candidate arm that the primary served instead, by reason"
            " (broken: the candidate failed mid-answer and the app's connection was cut).",
            ["migration", "arm", "reason"],
            registry=self.registry,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)  # present at zero from the start

        #: Other roles' registries served on the same endpoint (one-process `run`).
        self.also: list[CollectorRegistry] = []
        #: Other roles' health (`{"status": "ok" | "degraded", ...}`), served on /healthz.
        self.health: dict[str, Callable[[], dict[str, Any]]] = {}
        #: Other roles' metrics already in the text format, served after ours (a sidecar in a
        #: child process of `run` serves what its parent relays).
        self.relayed = b""

    def rollout_arm(self, migration: str, arm: str) -> None:
        """Show a rollout's counters at zero from the start, so rates exist before a call."""
        self.rollout_served.labels(migration, arm)
        for reason in FALLBACK_REASONS:
            self.rollout_fallbacks.labels(migration, arm, reason)

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in (self.registry, *self.also)) + self.relayed

    def dropped_total(self) -> float:
        sample = self.registry.get_sample_value
        return sum(
            sample("shadowjudge_sidecar_dropped_total", {"reason": r}) or 0.0 for r in DROP_REASONS
        )
