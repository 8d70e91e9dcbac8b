"""The live path: the HTTP/1.1 sidecar, capture, redaction, the bounded publisher, the
in-process transport and their metrics. Every microsecond and every failure mode here is the app's.

May import the contract, `mirror.answers` and `mirror.bus`; must not import `mirror.runner`.
"""
