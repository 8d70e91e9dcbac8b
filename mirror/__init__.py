"""mirror: the ingress: the live path's capture, the event contract, the bus and the shadow runner.

Rooms: `events`, `errors`, `config`, `pricing` (the contract every role shares), `bus/`,
`answers/`, `sidecar/` (the live path) and `runner/`. mirror imports neither `judge` nor
`dashboards`; the sidecar imports nothing of the runner.
"""
