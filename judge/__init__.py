"""judge: scores shadow pairs and writes them to ClickHouse.

Rooms: `scorers/` (refusal, format drift, the equivalence cascade and its LLM judge), `store/`
(DDL, rows, the idempotent writer), and the worker that joins them. judge may import `mirror`
(the event contract, the bus, settings and prices); it must not import `dashboards`.
"""
