"""`shadowjudge embeddings compare`: the embedding-migration verdict on a team's own corpus.

    shadowjudge embeddings compare --from P:OLD --to P:NEW --queries Q.jsonl --documents D.jsonl
        [--from-query-prefix S] [--from-document-prefix S] [--to-query-prefix S]
        [--to-document-prefix S] [--{from,to}-{query,document}-input-type T]
        [--thresholds 0.75,0.8] [--labels L.jsonl [--keep recall]]
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

from dashboards.analysis import embedding_report
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

K = embedding_report.K
MIN_HELD_OUT_QUERIES = embedding_report.MIN_HELD_OUT_QUERIES


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
            compare.add_argument(
                f"--{side}-{role}-input-type",
                default="",
                help=f"sent as the request's input_type for {role} texts",
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
        query_input_type=args.from_query_input_type,
        document_input_type=args.from_document_input_type,
    )
    new = model_spec(
        args.to_model,
        "--to",
        query_prefix=args.to_query_prefix,
        document_prefix=args.to_document_prefix,
        query_input_type=args.to_query_input_type,
        document_input_type=args.to_document_input_type,
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
    adapter_pairs = embedding_report.train_pairs(len(queries.ids), len(documents.ids))
    least_pairs = embedding_report.min_pairs()
    if args.adapter_out is not None and adapter_pairs < least_pairs:
        raise ConfigError(
            f"--adapter-out {args.adapter_out}: an adapter needs at least {least_pairs:,} pairs"
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
    given = embedding_report.ReportInput(
        old_label=old.label,
        new_label=new.label,
        query_ids=queries.ids,
        query_texts=queries.texts,
        segments=queries.segments,
        old_queries=vectors["old_queries"],
        new_queries=vectors["new_queries"],
        document_ids=documents.ids,
        document_texts=documents.texts,
        old_documents=vectors["old_documents"],
        new_documents=vectors["new_documents"],
    )
    report, overlap = embedding_report.build(
        given,
        cutoffs=cutoffs,
        labels=labels,
        keep=args.keep,
        least=args.least,
        adapter_out=args.adapter_out,
    )
    report["embedded"] = tally
    if judge is not None:
        report["judge"] = asyncio.run(ask_judge(judge, report["least_agreeing"]))
    report["verdict"] = embedding_report.verdict(overlap, report.get("judge"))
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        from dashboards.command.embeddings_render import render

        render(report, out)
    return 0


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
