"""Exact top-k by cosine: against a full sort, chunked or not, ties, self-exclusion."""

from __future__ import annotations

import numpy as np
import pytest

from judge.embeddings import cosine_matrix, normalise, top_k


def test_matches_a_full_sort_whatever_the_block_size() -> None:
    rng = np.random.default_rng(1)
    queries, documents = rng.normal(size=(37, 16)), rng.normal(size=(300, 16)) * 5
    expected = np.argsort(-cosine_matrix(queries, documents), axis=1, kind="stable")[:, :10]
    for block_bytes in (64 << 20, 4 * 300 * 3, 1):  # one block, 3 queries a block, 1 a block
        found = top_k(queries, documents, 10, max_block_bytes=block_bytes)
        assert np.array_equal(found.indices, expected)
        assert np.all(np.diff(found.scores, axis=1) <= 0)
    scores = cosine_matrix(queries, documents)
    assert np.allclose(found.scores, np.take_along_axis(scores, expected, axis=1), atol=1e-6)


def test_ties_break_by_lower_index_and_self_is_excluded() -> None:
    documents = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    found = top_k(np.array([[1.0, 0.0]]), documents, 3)
    assert found.indices.tolist() == [[0, 1, 3]]  # 0 and 1 tie at cosine 1
    without = top_k(documents[:2], documents, 2, exclude=[0, -1])
    assert without.indices.tolist() == [[1, 3], [0, 1]]


def test_refuses_what_it_cannot_answer() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        top_k(np.ones((2, 3)), np.ones((5, 4)), 2)
    with pytest.raises(ValueError, match="k must be"):
        top_k(np.ones((2, 3)), np.ones((5, 3)), 6)
    assert np.array_equal(normalise(np.zeros((1, 3))), np.zeros((1, 3)))
