"""Embedding migrations: do the old and the new embedding model retrieve the same things?

Pure analysis over numpy arrays, no I/O (the runner, the cache and the reference set feed it;
the report and the pages show what it returns):

- ``neighbours``: exact top-k by cosine, chunked;
- ``agreement``: overlap@k, top-1 agreement, rank-biased overlap, bootstrap intervals, per
  segment, the least-agreeing queries;
- ``thresholds``: similarity thresholds carried to the new model (quantile matching; keeping
  precision or recall on labelled pairs);
- ``adapters``: ridge and orthogonal Procrustes maps new -> old, retention on held-out queries,
  ``.npz`` export;
- ``verdict``: safe / investigate / re-embed and retune, against reference points.
"""

from .adapters import Adapter, AdapterReport, evaluate, fit_procrustes, fit_ridge, retention
from .agreement import (
    Agreement,
    Estimate,
    QueryDisagreement,
    agreement,
    estimate,
    least_agreeing,
    overlap_at_k,
    rbo_ext,
)
from .neighbours import Neighbours, cosine_matrix, normalise, top_k
from .thresholds import (
    LabelledThreshold,
    ThresholdMapping,
    best_threshold,
    map_threshold,
    threshold_keeping,
)
from .verdict import JudgeSplit, ReferencePoints, Verdict, VerdictCard, verdict_card

__all__ = [
    "Adapter",
    "AdapterReport",
    "Agreement",
    "Estimate",
    "JudgeSplit",
    "LabelledThreshold",
    "Neighbours",
    "QueryDisagreement",
    "ReferencePoints",
    "ThresholdMapping",
    "Verdict",
    "VerdictCard",
    "agreement",
    "best_threshold",
    "cosine_matrix",
    "estimate",
    "evaluate",
    "fit_procrustes",
    "fit_ridge",
    "least_agreeing",
    "map_threshold",
    "normalise",
    "overlap_at_k",
    "rbo_ext",
    "retention",
    "threshold_keeping",
    "top_k",
    "verdict_card",
]
