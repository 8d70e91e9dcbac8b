"""Reading a provider's answer (a body or an SSE stream) into an `ArmResult`.

Shared by the sidecar (the primary's answer) and the runner (each arm's answer); imports the
contract only, never `mirror.sidecar` or `mirror.runner`.
"""
