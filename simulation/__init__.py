"""Simulated parts for the keyless demo and for the tests: nothing here is ever on a real path.

- `providers`: OpenAI and Anthropic providers that speak each API faithfully (streaming
  included) and answer from scripts, served as plain ASGI apps.
- `demo`: the world `shadowjudge demo` shows: a shop's traffic mix, a primary, a candidate
  that differs the way real candidates do, a judge, and the app sending calls.

The package stands beside `mirror`, `judge` and `dashboards` and imports none of them: the
composition root (`dashboards.command`) wires a simulation in for `shadowjudge demo`, and the
tests use the same providers in place of the paid APIs.
"""
