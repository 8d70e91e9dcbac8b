"""mirror: the sidecar, in-process capture, event contract, bus and shadow runner."""
