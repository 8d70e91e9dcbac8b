"""Reference points of embedding migrations, measured on the offline models.

    .venv/bin/python -m tests.benchmarks.embedding_agreement [--queries 1000] [--documents 5000]
        [--save vectors.npz] [--load vectors.npz]

The fake OpenAI endpoint serves wordllama-l2, multilingual-e5-small and its fine-tune
multilingual-e5-small-enpt (``simulation.embeddings``); the official ``openai`` SDK embeds the
corpus (``tests/data/embeddings``: the first ``--queries`` texts as queries, the next
``--documents`` as documents, e5 with its query:/passage: prefixes). Printed: texts/s of each
model through the endpoint; for the same-family migration (e5 -> enpt) and the cross-family
one (wordllama -> e5): overlap@10, top-1 and RBO with 95% BCa intervals, the mean random-pair
cosine under each model, a threshold (the median old top-10 score) mapped by quantile matching
of the top-10 scores against the best threshold found by search over all pairs, ridge and
Procrustes adapter retention on 20% held-out queries, and the verdict. ``--save`` keeps the
vectors so ``--load`` recomputes the figures without the models.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import numpy.typing as npt
import openai

from judge.embeddings import (
    ReferencePoints,
    agreement,
    best_threshold,
    cosine_matrix,
    evaluate,
    map_threshold,
    top_k,
    verdict_card,
)
from simulation.embeddings import offline_models
from simulation.providers import openai_app, serve
from tests.judge.embeddings.corpus import E5, E5_ENPT, WORDLLAMA, Texts, embed, load

Vectors = npt.NDArray[np.float32]
MODELS = (WORDLLAMA, E5, E5_ENPT)


def embed_all(queries: int, documents: int) -> dict[str, tuple[Vectors, Vectors]]:
    q, d = load(queries, documents)
    vectors = {}
    with serve(openai_app(embedders=offline_models())) as served:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-bench", timeout=3600)
        for model in MODELS:
            embed(client, model, Texts(q.ids[:2], q.segments[:2], q.texts[:2]), query=True)
            start = time.perf_counter()  # after a first call has loaded the model
            vq = embed(client, model, q, query=True)
            vd = embed(client, model, d, query=False)
            seconds = time.perf_counter() - start
            rate = (len(q) + len(d)) / seconds
            print(f"{model}: {rate:.1f} texts/s ({len(q) + len(d)} texts in {seconds:.1f} s)")  # noqa: T201
            vectors[model] = (vq, vd)
        client.close()
    return vectors


def random_pair_cosine(vectors: Vectors, pairs: int = 20000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(vectors), pairs), rng.integers(0, len(vectors), pairs)
    keep = a != b
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return float(np.mean(np.sum(unit[a[keep]] * unit[b[keep]], axis=1)))


def migration(
    name: str, old: str, new: str, vectors: dict[str, tuple[Vectors, Vectors]], k: int = 10
) -> None:
    (oq, od), (nq, nd) = vectors[old], vectors[new]
    result = agreement(top_k(oq, od, k), top_k(nq, nd, k), k=k)
    o, t, r = result.overlap_mean, result.top1_mean, result.rbo_mean
    print(  # noqa: T201
        f"{name} ({old} -> {new}): overlap@{k} {o.mean:.3f} [{o.low:.3f}, {o.high:.3f}], "
        f"top-1 {t.mean:.3f} [{t.low:.3f}, {t.high:.3f}], "
        f"RBO {r.mean:.3f} [{r.low:.3f}, {r.high:.3f}]"
    )
    # a threshold passing half of the old model's top-k results, mapped on the neighbour
    # scores; the search runs over every query-document pair scored by both models
    old_neighbours, new_neighbours = top_k(oq, od, k).scores, top_k(nq, nd, k).scores
    old_threshold = float(np.median(old_neighbours))
    mapped = map_threshold(old_neighbours, new_neighbours, old_threshold)
    old_all, new_all = cosine_matrix(oq, od).ravel(), cosine_matrix(nq, nd).ravel()
    searched = best_threshold(new_all, old_all >= old_threshold)
    print(  # noqa: T201
        f"  threshold {old_threshold:.4f} -> {mapped.new_threshold:.4f} by quantile matching, "
        f"best by search {searched:.4f} (|diff| {abs(mapped.new_threshold - searched):.4f}); "
        f"flag rate of top-{k} results {mapped.flag_rate_before:.2%} before, "
        f"{mapped.flag_rate_unchanged:.2%} with the threshold unchanged, "
        f"{mapped.flag_rate_after:.2%} after"
    )
    for kind in ("ridge", "procrustes"):
        report = evaluate(kind, oq, nq, od, nd, old_model=old, new_model=new, k=k)
        ret = report.retention
        print(  # noqa: T201
            f"  {kind} adapter {new} -> {old}: retention@{k} {ret.mean:.3f} "
            f"[{ret.low:.3f}, {ret.high:.3f}] on {report.held_out_queries} held-out queries, "
            f"{report.train_pairs} training pairs"
        )
    card = verdict_card(result.overlap_mean, references=ReferencePoints(), k=k)
    print(f"  verdict: {card.summary}")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--save", help="write the vectors to this .npz")
    parser.add_argument("--load", help="read the vectors from this .npz instead of embedding")
    args = parser.parse_args()
    if args.load:
        with np.load(args.load) as data:
            vectors = {m: (data[f"{m}:q"], data[f"{m}:d"]) for m in MODELS}
    else:
        vectors = embed_all(args.queries, args.documents)
    if args.save:
        arrays = {f"{m}:{p}": v[i] for m, v in vectors.items() for i, p in enumerate("qd")}
        np.savez(args.save, **arrays)  # type: ignore[arg-type]
    for model in MODELS:
        print(f"{model}: random-pair cosine {random_pair_cosine(vectors[model][1]):.3f}")  # noqa: T201
    migration("same family", E5, E5_ENPT, vectors)
    migration("cross family", WORDLLAMA, E5, vectors)


if __name__ == "__main__":
    main()
