"""The one place that knows every bus: picks the implementation the settings' URL names."""

from __future__ import annotations

from mirror.bus.base import Bus
from mirror.bus.memory import MemoryBus
from mirror.config import BusSettings


def open_bus(settings: BusSettings, *, client_id: str = "shadowjudge") -> Bus:
    """The bus the settings name (not started)."""
    if settings.is_memory:
        return MemoryBus(settings.memory_capacity)
    # Imported here so that a memory-bus process (or an app embedding the in-process mirror)
    # never loads aiokafka.
    from mirror.bus.kafka import KafkaBus

    return KafkaBus(settings, client_id=client_id)
