"""Chat Completions ⇄ Anthropic Messages translation, shared by the runner and the sidecar.

`request` holds the request table of decisions, the entry points and the arm transforms;
`messages` and `params` its halves. `response` turns a complete answer back into the API the
app asked for (and screens a request the candidate will answer to the app itself); `stream`
does the same for a streamed answer fed as it arrives, with `stream_to_chat` and
`stream_to_messages` its halves and `sse` its incremental event decoder. Pure functions and
sans-I/O classes: no network, no bus, no runner, no sidecar.
"""
