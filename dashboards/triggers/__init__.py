"""Rollback triggers: anytime-valid rules over the judged pairs, their alerts and states."""
