"""`shadowjudge embeddings compare`: the embedding-migration verdict on a team's own corpus.

    shadowjudge embeddings compare --from P:OLD --to P:NEW --queries Q.jsonl --documents D.jsonl
        [--from-query-prefix S] [--from-document-prefix S] [--to-query-prefix S]
        [--to-document-prefix S] [--thresholds 0.75,0.8] [--labels L.jsonl [--keep recall]]
        [--least N] [--adapter-out map.npz] [--judge] [--json]

**Input**: two files, the queries (what is searched for) and the documents (what is searched
in), each JSONL or Parquet of `id` + `text` (`dashboards.command.corpus`), with an optional
`segment` on the queries for figures per segment. Two files rather than one with a `role`
field: the role decides the prefix (e5's `query: ` / `passage: `) and the cache key, and a team
usually has its documents and its logged queries apart already. Both sets are embedded with
both models through the embedding cache, so a second run embeds nothing.

**Report** (`judge.embeddings`): overlap@10 and top-1 agreement with 95% bootstrap intervals,
RBO as detail, per segment; the `--least` queries with the least agreement, both neighbour
lists side by side; each `--thresholds` cut-off mapped by quantile matching of the two models'
top-10 neighbour scores, with the share passing before / unchanged / after, and with
`--labels` (JSONL of `query`, `document`, `relevant`) the new cut-off keeping the old precision
(or recall, `--keep recall`) on those pairs; adapter viability (ridge and Procrustes, 20% of
the queries held out) only when there are at least 2,000 pairs — below that the report says
so and measures nothing; the verdict card.

**`--judge`**: the least-agreeing queries go to the LLM judge of the settings (`judge.provider`
/ `judge.model`) as "which list serves this query better", asked twice with the lists swapped;
only an answer that survives the swap counts as better or worse, anything else as equivalent
(position bias is not a preference). The query and both lists are data: each is fenced by tags
carrying a random boundary that none of the texts contains, as the pairwise rubric v2 does. A
judge call that fails is counted as not judged and named, never guessed. Data flows one way:
this command reads the corpus and the cache and writes only the cache, `--adapter-out` and
stdout; nothing of the live path is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dashboards.command.embedding_models import (
    cache_arguments,
    cached_embeddings,
    check_provider,
    model_spec,
)
from dashboards.command.embeddings_compare_input import (
    Texts,
    parse_thresholds,
    read_labels,
    read_texts,
)
from dashboards.command.embeddings_judge import ask_judge, configured_judge
from mirror.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from dashboards.settings import Settings
    from judge.embeddings import Estimate, Neighbours

K = 10
MIN_HELD_OUT_QUERIES = 10
"""Adapter retention is measured on 20% of the queries: at least this many of them."""
SNIPPET = 60


def add_parser(actions: Any) -> None:
    compare = actions.add_parser(
        "compare",
        help="does the new embedding model retrieve what the old one did? (a verdict)",
        description="Embed queries and documents with both models (through the cache) and"
        " report agreement, the least-agreeing queries, recalibrated thresholds, adapter"
        " viability and the verdict: safe / investigate / re-embed and retune.",
    )
    compare.add_argument("--from", dest="from_model", required=True, metavar="PROVIDER:MODEL")
    compare.add_argument("--to", dest="to_model", required=True, metavar="PROVIDER:MODEL")
    compare.add_argument("--queries", type=Path, required=True, help="JSONL/Parquet: id, text")
    compare.add_argument("--documents", type=Path, required=True, help="JSONL/Parquet: id, text")
    for side in ("from", "to"):
        for role in ("query", "document"):
            compare.add_argument(
                f"--{side}-{role}-prefix", default="", help=f"put before each {role} text"
            )
    compare.add_argument("--thresholds", default="", help="similarity cut-offs, e.g. 0.75,0.8")
    compare.add_argument(
        "--labels", type=Path, default=None, help="JSONL: query, document, relevant"
    )
    compare.add_argument("--keep", choices=("precision", "recall"), default="precision")
    compare.add_argument("--least", type=int, default=10, help="least-agreeing queries shown")
    compare.add_argument("--adapter-out", type=Path, default=None, metavar="FILE.npz")
    compare.add_argument("--judge", action="store_true", help="ask the settings' LLM judge")
    compare.add_argument("--json", action="store_true")
    cache_arguments(compare)


def run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from mirror.embeddings import EmbeddingModel

    old = model_spec(
        args.from_model,
        "--from",
        query_prefix=args.from_query_prefix,
        document_prefix=args.from_document_prefix,
    )
    new = model_spec(
        args.to_model,
        "--to",
        query_prefix=args.to_query_prefix,
        document_prefix=args.to_document_prefix,
    )
    check_provider(settings, old.provider, "--from")
    check_provider(settings, new.provider, "--to")
    if args.least < 1:
        raise ConfigError("--least must be at least 1")
    cutoffs = parse_thresholds(args.thresholds)
    judge = configured_judge(settings) if args.judge else None
    queries = read_texts(args.queries, "--queries")
    documents = read_texts(args.documents, "--documents")
    if len(documents.ids) <= K:
        raise ConfigError(f"--documents {args.documents}: {len(documents.ids)} texts; need > {K}")
    labels = read_labels(args.labels, queries, documents) if args.labels else None
    pairs = len(queries.ids) + len(documents.ids)
    adapter_pairs = _train_pairs(len(queries.ids), len(documents.ids))
    if args.adapter_out is not None and adapter_pairs < _min_pairs():
        raise ConfigError(
            f"--adapter-out {args.adapter_out}: an adapter needs at least {_min_pairs():,} pairs"
            f" to fit; {pairs:,} texts give {adapter_pairs:,} after holding out 20% of queries"
        )
    if args.adapter_out is not None and len(queries.ids) < MIN_HELD_OUT_QUERIES * 5:
        raise ConfigError(
            f"--adapter-out {args.adapter_out}: retention is measured on 20% of the queries;"
            f" {len(queries.ids)} queries are fewer than {MIN_HELD_OUT_QUERIES * 5}"
        )
    models: tuple[EmbeddingModel, EmbeddingModel] = (old, new)
    tally: dict[str, dict[str, int]] = {}
    vectors = asyncio.run(_embed(settings, args, models, queries, documents, tally))
    report, overlap = _analyse(args, models, queries, documents, vectors, cutoffs, labels)
    report["embedded"] = tally
    if judge is not None:
        report["judge"] = asyncio.run(ask_judge(judge, report["least_agreeing"]))
    report["verdict"] = _verdict(overlap, report.get("judge"))
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        from dashboards.command.embeddings_compare_render import render

        render(report, out)
    return 0


def _min_pairs() -> int:
    from judge.embeddings.adapters import MIN_PAIRS

    return MIN_PAIRS


def _train_pairs(queries: int, documents: int) -> int:
    """The pairs an adapter is fitted on: every document and the queries not held out (as
    `judge.embeddings.adapters.evaluate` splits them)."""
    return documents + queries - max(1, round(0.2 * queries))


Vectors = dict[str, "npt.NDArray[np.float32]"]


async def _embed(
    settings: Settings,
    args: argparse.Namespace,
    models: Sequence[Any],
    queries: Texts,
    documents: Texts,
    tally: dict[str, dict[str, int]],
) -> Vectors:
    """Both models' vectors of both sets; `tally` gets each side's texts embedded and cached."""
    from mirror.embeddings import Role

    found: Vectors = {}
    async with cached_embeddings(settings, args, models) as cached:
        for side, model in zip(("old", "new"), models, strict=True):
            q = await cached.embed(model, queries.texts, Role.QUERY)
            d = await cached.embed(model, documents.texts, Role.DOCUMENT)
            found[f"{side}_queries"], found[f"{side}_documents"] = q.vectors, d.vectors
            tally[side] = {"embedded": q.embedded + d.embedded, "cached": q.cached + d.cached}
    return found


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def _figure(value: Any) -> dict[str, float | int]:
    return {
        "mean": round(value.mean, 6),
        "low": round(value.low, 6),
        "high": round(value.high, 6),
        "n": value.n,
    }


def _analyse(
    args: argparse.Namespace,
    models: tuple[Any, Any],
    queries: Texts,
    documents: Texts,
    vectors: Vectors,
    cutoffs: list[float],
    labels: list[tuple[int, int, bool]] | None,
) -> tuple[dict[str, Any], Estimate]:
    """The report's figures, and the overlap@10 estimate unrounded (for the verdict)."""
    from judge.embeddings import agreement, least_agreeing, top_k

    old_nb = top_k(vectors["old_queries"], vectors["old_documents"], K)
    new_nb = top_k(vectors["new_queries"], vectors["new_documents"], K)
    agreed = agreement(old_nb, new_nb, k=K, segments=queries.segments)

    def listed(indices: Sequence[int]) -> list[dict[str, Any]]:
        return [{"id": documents.ids[i], "text": _snippet(documents.texts[i])} for i in indices]

    least = [
        {
            "query_id": queries.ids[d.query],
            "query": queries.texts[d.query],
            "overlap": round(d.overlap, 4),
            "rbo": round(d.rbo, 4),
            "old": listed(d.old),
            "new": listed(d.new),
        }
        for d in least_agreeing(agreed, old_nb, new_nb, n=args.least)
    ]
    report = {
        "from": models[0].label,
        "to": models[1].label,
        "queries": len(queries.ids),
        "documents": len(documents.ids),
        "k": K,
        "agreement": {
            "overlap": _figure(agreed.overlap_mean),
            "top1": _figure(agreed.top1_mean),
            "rbo": _figure(agreed.rbo_mean),
            "segments": {
                label: {"overlap": _figure(o), "top1": _figure(t), "rbo": _figure(r)}
                for label, (o, t, r) in agreed.segments.items()
            },
        },
        "least_agreeing": least,
        "thresholds": _threshold_rows(args, vectors, old_nb, new_nb, cutoffs, labels),
        "adapter": _adapters(args, models, vectors),
    }
    return report, agreed.overlap_mean


def _threshold_rows(
    args: argparse.Namespace,
    vectors: Vectors,
    old_nb: Neighbours,
    new_nb: Neighbours,
    cutoffs: list[float],
    labels: list[tuple[int, int, bool]] | None,
) -> list[dict[str, Any]]:
    import numpy as np

    from judge.embeddings import map_threshold, normalise, threshold_keeping

    labelled: tuple[Any, Any, Any] | None = None
    if labels:
        q = np.array([p[0] for p in labels])
        d = np.array([p[1] for p in labels])

        def pair_scores(side: str) -> Any:
            a = normalise(vectors[f"{side}_queries"])[q]
            b = normalise(vectors[f"{side}_documents"])[d]
            return np.sum(a * b, axis=1)

        labelled = (pair_scores("old"), pair_scores("new"), np.array([p[2] for p in labels]))
    rows = []
    for cutoff in cutoffs:
        mapped = map_threshold(old_nb.scores.ravel(), new_nb.scores.ravel(), cutoff)
        row: dict[str, Any] = {
            "old": cutoff,
            "new": round(mapped.new_threshold, 4),
            "pass_before": round(mapped.flag_rate_before, 4),
            "pass_unchanged": round(mapped.flag_rate_unchanged, 4),
            "pass_after": round(mapped.flag_rate_after, 4),
        }
        if labelled is not None:
            kept = threshold_keeping(*labelled, cutoff, keep=args.keep)
            row["labelled"] = {
                "kept": kept.kept,
                "pairs": len(labelled[2]),
                "new": round(kept.new_threshold, 4),
                "old_precision": round(kept.old_precision, 4),
                "old_recall": round(kept.old_recall, 4),
                "new_precision": round(kept.new_precision, 4),
                "new_recall": round(kept.new_recall, 4),
                # threshold_keeping falls back to the nearest cut when no cut keeps it
                "reached": (kept.new_precision >= kept.old_precision - 1e-9)
                if kept.kept == "precision"
                else (kept.new_recall >= kept.old_recall - 1e-9),
            }
        rows.append(row)
    return rows


def _adapters(args: argparse.Namespace, models: tuple[Any, Any], vectors: Vectors) -> Any:
    from judge.embeddings import evaluate

    queries, documents = len(vectors["old_queries"]), len(vectors["old_documents"])
    train = _train_pairs(queries, documents)
    found: dict[str, Any] = {
        "pairs": queries + documents,
        "train_pairs": train,
        "min_pairs": _min_pairs(),
        "measured": train >= _min_pairs() and queries >= MIN_HELD_OUT_QUERIES * 5,
    }
    if train < _min_pairs():
        found["reason"] = (
            f"fewer than {_min_pairs():,} pairs to fit on ({train:,} after holding out 20% of"
            f" the {queries:,} queries): adapter retention not measured"
        )
    elif not found["measured"]:
        found["reason"] = (
            f"fewer than {MIN_HELD_OUT_QUERIES * 5} queries ({queries}): too few held out to"
            " measure adapter retention"
        )
    if not found["measured"]:
        return found
    reports = {
        kind: evaluate(
            kind,
            vectors["old_queries"],
            vectors["new_queries"],
            vectors["old_documents"],
            vectors["new_documents"],
            old_model=models[0].label,
            new_model=models[1].label,
            k=K,
        )
        for kind in ("ridge", "procrustes")
    }
    for kind, report in reports.items():
        found[kind] = {
            "retention": _figure(report.retention),
            "held_out_queries": report.held_out_queries,
        }
    if args.adapter_out is not None:
        best = max(reports.values(), key=lambda r: r.retention.mean)
        best.adapter.save(args.adapter_out)
        found["written"] = {"path": str(args.adapter_out), "kind": best.adapter.kind}
    return found


def _verdict(overlap: Estimate, judged: dict[str, Any] | None) -> dict[str, Any]:
    from judge.embeddings import JudgeSplit, verdict_card

    card = verdict_card(
        overlap,
        judge=None
        if judged is None
        else JudgeSplit(better=judged["better"], worse=judged["worse"], same=judged["same"]),
        k=K,
    )
    return {"verdict": card.verdict.value, "reasons": list(card.reasons)}
