"""Simulated parts for the keyless demo and for the tests: nothing here is ever on a real path.

- `providers`: OpenAI and Anthropic providers that speak each API faithfully (streaming
  included) and answer from scripts, served as plain ASGI apps.

The package stands beside `mirror`, `judge` and `dashboards` and imports none of them: the
composition root (`dashboards.command`) wires a simulation in for `shadowjudge demo`, and the
tests use the same providers in place of the paid APIs.
"""
