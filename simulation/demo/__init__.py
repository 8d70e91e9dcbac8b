"""The keyless demo's simulated world: a shop's support assistant moving from one model to
another. `scenario` is the traffic mix, `models` the simulated primary, candidate and judge,
`traffic` the app sending calls with the official SDK. Everything here is labelled simulated
wherever it shows (model names, the judge's reasons, the demo's banner).
"""
