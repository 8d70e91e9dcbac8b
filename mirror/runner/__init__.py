"""The shadow runner: replays the captured calls its migrations sample (`mirror.migrations`,
`mirror.sampling`) to their arms, within limits and spend, and publishes each arm's answer as a
`ShadowPair`.

May import the contract, `mirror.answers` and `mirror.bus`; must not import `mirror.sidecar`.
"""
