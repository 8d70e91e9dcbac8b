"""The control topic: rollout weight changes from the controls to every sidecar.

A change is one record keyed by its migration (`WeightChange.encode`), so the compacted topic
keeps the latest per migration. `ControlReader` is how a sidecar in its own process follows
it: a consumer group of its own, made fresh at each start and never committed, so it reads the
topic from the beginning (the weights in force), then every change as it comes, polling every
`POLL_MS`. While the brokers are away it keeps serving the weights it has and tries again; a
record that is not a change is logged and skipped (it cannot be dead-lettered: the DLQ is for
the calls and pairs the judge owns).

In the embedded run there is no reader: the controls and the sidecar share one `Weights`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from mirror.bus.base import Bus, foreign_cancel_ignored
from mirror.errors import BusError
from mirror.rollout import WeightChange, Weights

log = logging.getLogger(__name__)

#: How long one poll waits for records: a change reaches a sidecar within about this.
POLL_MS = 500
RETRY_S = 1.0
STOP_TIMEOUT_S = 5.0


async def publish_change(bus: Bus, topic: str, change: WeightChange) -> None:
    """Send `change` and wait for the broker's acknowledgement."""
    delivery = await bus.send(topic, change.encode(), key=change.migration.encode())
    await delivery


class ControlReader:
    """Applies every change on `topic` to `weights` until stopped."""

    def __init__(self, bus: Bus, topic: str, weights: Weights) -> None:
        self.bus = bus
        self.topic = topic
        self.weights = weights
        self.applied = 0
        self.skipped = 0

    async def run(self, stop: asyncio.Event) -> None:
        group = f"shadowjudge-control-{uuid.uuid4().hex[:12]}"
        while not stop.is_set():
            # From the start whatever `bus.consumer.offset_reset` says: a fresh group set to
            # `latest` would miss the weights in force.
            consumer = self.bus.consumer([self.topic], group=group, from_start=True)
            try:
                await consumer.start()
                while not stop.is_set():
                    for record in await consumer.getmany(timeout_ms=POLL_MS, max_records=500):
                        self._apply(record.value)
            except BusError as exc:
                log.warning(
                    "rollout control topic %s unreachable (%s): serving the last known weights",
                    self.topic,
                    exc,
                )
            finally:
                # With the brokers away, aiokafka's stop may raise, wait, or let out its fetch
                # task's cancel, which must not end the reader: the sidecar's weights would
                # freeze. A cancel of this task still ends it.
                try:
                    with foreign_cancel_ignored("the control consumer"):
                        await asyncio.wait_for(consumer.stop(), STOP_TIMEOUT_S)
                except Exception as exc:  # noqa: BLE001 - leaving is best effort
                    log.debug("control consumer stopped uncleanly: %r", exc)
            try:
                await asyncio.wait_for(stop.wait(), RETRY_S)
            except TimeoutError:
                pass

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return  # a tombstone: compaction's delete marker, nothing to apply
        try:
            change = WeightChange.decode(value)
        except ValueError as exc:
            self.skipped += 1
            log.error(
                "control topic %s: skipped a record that is not a change: %s", self.topic, exc
            )
            return
        if self.weights.apply(change):
            self.applied += 1
            log.info(
                "rollout %s/%s now %.0f%% (%s)",
                change.migration,
                change.arm,
                change.weight * 100,
                change.actor,
            )
