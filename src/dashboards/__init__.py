"""dashboards: pages, rollback triggers, alerts, review queue, rollout control, and the CLI."""
