"""mirror: the ingress: the live path's capture, the event contract, the bus and the shadow runner.

Rooms: `events`, `errors`, `config`, `pricing`, `fit`, `migrations`, `sampling`, `rollout`
(the contract every role shares), `bus/`, `answers/`, `translate/`, `sidecar/` (the live
path) and `runner/`. mirror imports neither `judge` nor `dashboards`; the sidecar imports
nothing of the runner.
"""
