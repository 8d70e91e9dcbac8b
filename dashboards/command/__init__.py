"""The `shadowjudge` command: argument parsing and the supervisor that starts roles and owns the
signals. The composition root, the one place that wires mirror, judge and dashboards together;
nothing imports it.
"""
