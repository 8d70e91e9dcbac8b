"""The bus between the roles: the interface, the memory bus, Kafka, commit offsets.

Imports the contract (`mirror.events`, `mirror.errors`, `mirror.config`) only; `factory` is the one
module that knows both implementations. Neither the sidecar nor the runner is imported here.
"""
