"""Staged rollout, the controls: who may move a candidate's served weight, how a change is
applied, published and audited, and the step schedule (`control`)."""
