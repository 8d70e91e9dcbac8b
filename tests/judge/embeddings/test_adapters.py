"""Adapters new -> old: retention on held-out queries, mismatched widths, the .npz export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ortho_group

from judge.embeddings import Adapter, evaluate, fit_procrustes, fit_ridge


def space(seed: int = 7, docs: int = 2000, queries: int = 250, dim: int = 24) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(queries, dim)), rng.normal(size=(docs, dim))


def test_rotated_space_is_recovered() -> None:
    q, d = space()
    rotation = ortho_group.rvs(24, random_state=8)
    for kind in ("procrustes", "ridge"):
        report = evaluate(kind, q, q @ rotation, d, d @ rotation, old_model="a", new_model="b")
        assert report.retention.mean == pytest.approx(1.0)
        assert report.held_out_queries == 50 and report.train_pairs == 2200
    procrustes = fit_procrustes(q @ rotation, q, min_pairs=10)
    assert np.allclose(procrustes.weight @ procrustes.weight.T, np.eye(24), atol=1e-5)


def test_unrelated_space_keeps_only_chance() -> None:
    q, d = space()
    rng = np.random.default_rng(9)
    report = evaluate("ridge", q, rng.normal(size=q.shape), d, rng.normal(size=d.shape))
    assert report.retention.mean < 0.05  # chance: k / documents = 0.005


@pytest.mark.parametrize("new_dim", [16, 40])
def test_mismatched_widths(new_dim: int) -> None:
    q, d = space(dim=24)
    lift = np.random.default_rng(10).normal(size=(24, new_dim))
    new_q, new_d = q @ lift, d @ lift  # a linear image of the old space, another width
    ridge = evaluate("ridge", q, new_q, d, new_d)
    procrustes = evaluate("procrustes", q, new_q, d, new_d)
    assert procrustes.adapter.weight.shape == (new_dim, 24)
    assert ridge.adapter.weight.shape == (new_dim, 24)
    if new_dim > 24:  # the affine map inverts the lift; a rotation cannot
        assert ridge.retention.mean > 0.9 > procrustes.retention.mean


def test_needs_enough_pairs_and_exports_npz(tmp_path: Path) -> None:
    q, d = space(docs=300)
    with pytest.raises(ValueError, match="at least 2000 pairs"):
        fit_ridge(d, d)
    report = evaluate(
        "ridge", q, q * 2, d, d * 2, old_model="old-m", new_model="new-m", min_pairs=100
    )
    path = tmp_path / "adapter.npz"
    report.adapter.save(path)
    loaded = Adapter.load(path)
    assert (loaded.kind, loaded.old_model, loaded.new_model) == ("ridge", "old-m", "new-m")
    assert loaded.figures["retention"] == report.retention.mean
    assert loaded.figures["train_pairs"] == report.train_pairs
    assert np.allclose(loaded.apply(q[:5]), report.adapter.apply(q[:5]))
    assert loaded.regularisation > 0
