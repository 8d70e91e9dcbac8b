"""dashboards: the decisions: settings, pages, triggers, alerts, review, rollout control.

The top of the import direction: it may import `judge` and `mirror`; neither may import it.
`dashboards.command` (the `shadowjudge` command) is the composition root.
"""
