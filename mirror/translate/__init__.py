"""Chat Completions ⇄ Anthropic Messages translation, shared by the runner and the sidecar.

`request` holds the request table of decisions, the entry points and the arm transforms;
`messages` and `params` its halves. Pure functions: no I/O, no bus, no runner, no sidecar.
"""
