"""Maps from the new model's space into the old one's, and what they keep of the old index.

"Can we keep the old index for a while?" — embed queries with the new model, map them into the
old space, search the old document vectors. Drift adapters (Vejendla, "Drift-Adapter: A
Practical Approach to Near Zero-Downtime Embedding Model Upgrades in Vector Databases", EMNLP
2025) claim 95–99% of a full re-embedding's recall; independent replications measure far less,
so the retention is measured here on held-out queries, never assumed.

Two maps, fitted on (new vector, old vector) pairs of the same texts:

- **ridge** (affine): ``old ≈ new @ W + b``, closed form on centred data,
  ``W = (XᵀX + λI)⁻¹ XᵀY`` (Hoerl & Kennard, Technometrics 12(1), 1970); λ is chosen on a
  validation fifth of the training split (largest mean cosine between mapped and true old
  vectors over a log grid scaled to the data's variance), then refitted on the whole split;
- **orthogonal Procrustes**: the rotation ``R`` minimising ``‖XR − Y‖_F`` (Schönemann,
  Psychometrika 31(1), 1966), via ``scipy.linalg.orthogonal_procrustes``, between the centred
  spaces, the old mean added back as the bias (a rigid map with translation: e5's vectors
  share a large common component — random pairs have cosine 0.82 — that an uncentred rotation
  spends itself on; centring lifted wordllama -> e5 retention from 0.06 to 0.27). It needs equal
  widths; with different widths the narrower side is padded with zero columns to the wider
  width, the rotation is fitted there, and the mapped vectors keep the old model's first
  ``d_old`` columns — a semi-orthogonal map (``d_new > d_old``: a rotation then a projection;
  ``d_new < d_old``: an isometric embedding into the old space).

Retention (``evaluate``): fit on ≥ 2,000 pairs, hold out 20% of the queries (never fitted on),
and for each held-out query compare the top-k old documents found by its MAPPED NEW vector
with the top-k found by its OLD vector (overlap@k, k = 10), with a bootstrap interval.
``Adapter.save`` exports the map as ``.npz`` (arrays ``weight``, ``bias`` and the fit's
figures); applying it is ``x @ weight + bias`` then L2 normalisation. Pure numpy/scipy; the
only I/O is ``save``/``load`` of the path the caller gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import linalg

from .agreement import Estimate, estimate, overlap_at_k
from .neighbours import Vectors, normalise, top_k

Kind = Literal["ridge", "procrustes"]
MIN_PAIRS = 2000
RIDGE_GRID = tuple(10.0**e for e in range(-4, 3))
"""λ candidates, as multiples of the training data's total variance."""


@dataclass(frozen=True, slots=True)
class Adapter:
    """A fitted map ``new -> old``: ``x @ weight + bias``, then L2-normalised."""

    kind: Kind
    weight: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    old_model: str = ""
    new_model: str = ""
    regularisation: float = 0.0
    """λ of the ridge map (0 for Procrustes)."""
    figures: dict[str, float] = field(default_factory=dict)
    """What the fit measured (pairs, retention and its interval...), exported with it."""

    def apply(self, new_vectors: Vectors) -> npt.NDArray[np.float32]:
        mapped = normalise(new_vectors) @ self.weight + self.bias
        return normalise(mapped)

    def save(self, path: str | Path) -> None:
        """The map as numpy ``.npz``: ``weight``, ``bias``, ``kind``, the model names,
        ``regularisation`` and one ``figure_<name>`` scalar per figure."""
        figures = {f"figure_{name}": np.float64(value) for name, value in self.figures.items()}
        np.savez(
            Path(path),
            weight=self.weight,
            bias=self.bias,
            kind=np.str_(self.kind),
            old_model=np.str_(self.old_model),
            new_model=np.str_(self.new_model),
            regularisation=np.float64(self.regularisation),
            **figures,  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: str | Path) -> Adapter:
        with np.load(Path(path)) as data:
            kind = str(data["kind"])
            if kind not in ("ridge", "procrustes"):
                raise ValueError(f"{path}: unknown adapter kind {kind!r}")
            return cls(
                kind="ridge" if kind == "ridge" else "procrustes",
                weight=data["weight"],
                bias=data["bias"],
                old_model=str(data["old_model"]),
                new_model=str(data["new_model"]),
                regularisation=float(data["regularisation"]),
                figures={
                    key.removeprefix("figure_"): float(data[key])
                    for key in data.files
                    if key.startswith("figure_")
                },
            )


@dataclass(frozen=True, slots=True)
class AdapterReport:
    """An adapter and the retention it measured on held-out queries."""

    adapter: Adapter
    retention: Estimate
    """overlap@k of mapped-new-query neighbours with the old model's own, held-out queries."""
    train_pairs: int
    held_out_queries: int
    k: int


def _check_pairs(new: npt.NDArray[np.float32], old: npt.NDArray[np.float32], least: int) -> None:
    if new.shape[0] != old.shape[0]:
        raise ValueError(f"{new.shape[0]} new vectors but {old.shape[0]} old ones")
    if new.shape[0] < least:
        raise ValueError(f"an adapter needs at least {least} pairs, got {new.shape[0]}")


def _ridge_solve(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], lam: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = (x - x_mean).astype(np.float64), (y - y_mean).astype(np.float64)
    gram = xc.T @ xc + lam * np.eye(x.shape[1])
    weight = linalg.solve(gram, xc.T @ yc, assume_a="pos")
    bias = y_mean - x_mean @ weight
    return weight.astype(np.float32), bias.astype(np.float32)


def fit_ridge(new: Vectors, old: Vectors, *, min_pairs: int = MIN_PAIRS, seed: int = 0) -> Adapter:
    """An affine map, λ chosen on a validation fifth of the pairs given."""
    x, y = normalise(new), normalise(old)
    _check_pairs(x, y, min_pairs)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    cut = max(1, x.shape[0] // 5)
    val, fit = order[:cut], order[cut:]
    scale = float(np.sum(np.var(x[fit], axis=0))) * fit.size
    best_lam, best_score = RIDGE_GRID[0] * scale, -np.inf
    for factor in RIDGE_GRID:
        weight, bias = _ridge_solve(x[fit], y[fit], factor * scale)
        score = float(np.mean(np.sum(normalise(x[val] @ weight + bias) * y[val], axis=1)))
        if score > best_score:
            best_lam, best_score = factor * scale, score
    weight, bias = _ridge_solve(x, y, best_lam)
    return Adapter(kind="ridge", weight=weight, bias=bias, regularisation=best_lam)


def fit_procrustes(new: Vectors, old: Vectors, *, min_pairs: int = MIN_PAIRS) -> Adapter:
    """The best rotation between the centred spaces, plus the translation between their means
    (semi-orthogonal with different widths, see the module docstring)."""
    x, y = normalise(new), normalise(old)
    _check_pairs(x, y, min_pairs)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    width = max(x.shape[1], y.shape[1])
    xp = np.pad(x - x_mean, ((0, 0), (0, width - x.shape[1])))
    yp = np.pad(y - y_mean, ((0, 0), (0, width - y.shape[1])))
    rotation, _ = linalg.orthogonal_procrustes(xp, yp)
    weight = rotation[: x.shape[1], : y.shape[1]].astype(np.float32)
    bias = (y_mean - x_mean @ weight).astype(np.float32)
    return Adapter(kind="procrustes", weight=weight, bias=bias)


def retention(
    adapter: Adapter,
    new_queries: Vectors,
    old_queries: Vectors,
    old_documents: Vectors,
    *,
    k: int = 10,
) -> npt.NDArray[np.float64]:
    """Per query, overlap@k of the old-index neighbours of the mapped new vector with those of
    the old vector."""
    truth = top_k(old_queries, old_documents, k)
    mapped = top_k(adapter.apply(new_queries), old_documents, k)
    return overlap_at_k(truth.indices, mapped.indices, k)


def evaluate(
    kind: Kind,
    old_queries: Vectors,
    new_queries: Vectors,
    old_documents: Vectors,
    new_documents: Vectors,
    *,
    old_model: str = "",
    new_model: str = "",
    hold_out: float = 0.2,
    k: int = 10,
    min_pairs: int = MIN_PAIRS,
    seed: int = 0,
) -> AdapterReport:
    """Fit on the documents and (1 - ``hold_out``) of the queries, measure retention on the
    held-out queries against the old document index."""
    if not 0 < hold_out < 1:
        raise ValueError("hold_out must be in (0, 1)")
    n = len(old_queries)
    order = np.random.default_rng(seed).permutation(n)
    held = order[: max(1, int(round(hold_out * n)))]
    train = order[held.size :]
    new_train = np.concatenate([normalise(new_documents), normalise(new_queries)[train]])
    old_train = np.concatenate([normalise(old_documents), normalise(old_queries)[train]])
    if kind == "ridge":
        fitted = fit_ridge(new_train, old_train, min_pairs=min_pairs, seed=seed)
    else:
        fitted = fit_procrustes(new_train, old_train, min_pairs=min_pairs)
    per_query = retention(
        fitted,
        np.asarray(new_queries)[held],
        np.asarray(old_queries)[held],
        old_documents,
        k=k,
    )
    kept = estimate(per_query, seed=seed)
    figures = {
        "train_pairs": float(len(new_train)),
        "held_out_queries": float(held.size),
        "k": float(k),
        "retention": kept.mean,
        "retention_low": kept.low,
        "retention_high": kept.high,
    }
    adapter = Adapter(
        kind=fitted.kind,
        weight=fitted.weight,
        bias=fitted.bias,
        old_model=old_model,
        new_model=new_model,
        regularisation=fitted.regularisation,
        figures=figures,
    )
    return AdapterReport(
        adapter=adapter,
        retention=kept,
        train_pairs=len(new_train),
        held_out_queries=int(held.size),
        k=k,
    )
