"""The ClickHouse store: the schema and its aggregate views, the rows, the idempotent batch writer.

Imports `judge.comparison` and `mirror.events`; never the scorers, the worker or `dashboards`.
"""
