"""mirror: the sidecar, the in-process capture, the event contract, the bus and the shadow runner."""
