"""The shadow runner: which captured calls to replay (migrations, sampling), to which arms,
within which limits and spend, and publishing each arm's answer as a `ShadowPair`.

May import the contract, `mirror.answers` and `mirror.bus`; must not import `mirror.sidecar`.
"""
