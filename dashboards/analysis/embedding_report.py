"""The embedding-migration report: one builder for `embeddings compare` (a team's own files)
and `embeddings report` (the reference set sampled from traffic), the page and the API.

Input: the queries (what is searched for) and the corpus (what is searched in), both models'
vectors of each, and optionally a segment per query. Output: one JSON-ready dict — what
`--json` prints, the API returns and the page and the text renderer lay out — with
`agreement` (overlap@10, top-1, RBO with 95% BCa intervals, overall and per segment),
`least_agreeing` (both neighbour lists side by side), `thresholds` (each cut-off mapped by
quantile matching of the two models' top-10 neighbour scores, with the share passing before,
unchanged and after; with labelled pairs the cut-off keeping the old precision or recall),
`adapter` (ridge and Procrustes retention on held-out queries, only with at least 2,000 pairs
to fit on) and `verdict` (`judge.embeddings.verdict_card`). The figures come from
`judge.embeddings`; this module only chooses what to compute and lays it out.

**No corpus** (a team routing only its queries through the sidecar): the queries are their own
corpus, each query's neighbours are its nearest OTHER texts (`top_k(..., exclude=)`), and the
adapter is fitted on 80% of the texts and measured on the other 20% against an index of the
80% alone (a held-out text is never in the index it is searched in). `corpus` in the report
says which case it is.

Pure: arrays in, a dict out; no store, no network, no files except `adapter_out`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from judge.embeddings import AdapterReport, Estimate, Neighbours

    Vectors = npt.NDArray[np.float32]

K = 10
MIN_HELD_OUT_QUERIES = 10
"""Adapter retention is measured on 20% of the queries: at least this many of them."""
SNIPPET = 60
HOLD_OUT = 0.2


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Both models' vectors of the queries and of the corpus, rows aligned with the ids.

    `documents=None` (and no document vectors): the queries are their own corpus."""

    old_label: str
    new_label: str
    query_ids: Sequence[str | int]
    query_texts: Sequence[str]
    old_queries: Vectors
    new_queries: Vectors
    segments: Sequence[str] | None = None
    document_ids: Sequence[str | int] | None = None
    document_texts: Sequence[str] | None = None
    old_documents: Vectors | None = None
    new_documents: Vectors | None = None

    @property
    def self_corpus(self) -> bool:
        return self.document_ids is None

    def corpus(self, side: Literal["old", "new"]) -> Vectors:
        found = self.old_documents if side == "old" else self.new_documents
        if found is None:
            return self.old_queries if side == "old" else self.new_queries
        return found

    @property
    def corpus_ids(self) -> Sequence[str | int]:
        return self.query_ids if self.document_ids is None else self.document_ids

    @property
    def corpus_texts(self) -> Sequence[str]:
        return self.query_texts if self.document_texts is None else self.document_texts


def min_pairs() -> int:
    from judge.embeddings.adapters import MIN_PAIRS

    return MIN_PAIRS


def held_out(queries: int) -> int:
    """How many queries adapter retention is measured on (as `adapters.evaluate` splits)."""
    return max(1, round(HOLD_OUT * queries))


def train_pairs(queries: int, documents: int) -> int:
    """The pairs an adapter is fitted on: every document and the queries not held out; with no
    corpus (`documents` 0) the texts not held out."""
    return documents + queries - held_out(queries)


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def figure(value: Estimate) -> dict[str, float | int]:
    return {
        "mean": round(value.mean, 6),
        "low": round(value.low, 6),
        "high": round(value.high, 6),
        "n": value.n,
    }


def estimate_of(found: dict[str, Any]) -> Estimate:
    """A figure of the report back as an estimate (the verdict, when it is redone)."""
    from judge.embeddings import Estimate

    return Estimate(
        mean=float(found["mean"]), low=float(found["low"]), high=float(found["high"]),
        n=int(found["n"]),
    )  # fmt: skip


def build(
    given: ReportInput,
    *,
    cutoffs: Sequence[float] = (),
    labels: list[tuple[int, int, bool]] | None = None,
    keep: Literal["precision", "recall"] = "precision",
    least: int = 10,
    adapter_out: Path | None = None,
) -> tuple[dict[str, Any], Estimate]:
    """The report's figures (no `verdict` yet: `verdict()` adds it, after the judge if any),
    and the overlap@10 estimate unrounded."""
    import numpy as np

    from judge.embeddings import agreement, least_agreeing, top_k

    exclude = np.arange(len(given.query_ids)) if given.self_corpus else None
    old_nb = top_k(given.old_queries, given.corpus("old"), K, exclude=exclude)
    new_nb = top_k(given.new_queries, given.corpus("new"), K, exclude=exclude)
    segments = given.segments if given.segments and len(set(given.segments)) > 1 else None
    agreed = agreement(old_nb, new_nb, k=K, segments=segments)
    ids, texts = given.corpus_ids, given.corpus_texts

    def listed(indices: Sequence[int]) -> list[dict[str, Any]]:
        return [{"id": ids[i], "text": snippet(texts[i])} for i in indices]

    least_rows = [
        {
            "query_id": given.query_ids[d.query],
            "query": given.query_texts[d.query],
            "overlap": round(d.overlap, 4),
            "rbo": round(d.rbo, 4),
            "old": listed(d.old),
            "new": listed(d.new),
        }
        for d in least_agreeing(agreed, old_nb, new_nb, n=least)
    ]
    report = {
        "from": given.old_label,
        "to": given.new_label,
        "queries": len(given.query_ids),
        "documents": 0 if given.document_ids is None else len(given.document_ids),
        "corpus": "queries" if given.self_corpus else "documents",
        "k": K,
        "agreement": {
            "overlap": figure(agreed.overlap_mean),
            "top1": figure(agreed.top1_mean),
            "rbo": figure(agreed.rbo_mean),
            "segments": {
                label: {"overlap": figure(o), "top1": figure(t), "rbo": figure(r)}
                for label, (o, t, r) in agreed.segments.items()
            },
        },
        "least_agreeing": least_rows,
        "thresholds": _threshold_rows(given, old_nb, new_nb, cutoffs, labels, keep),
        "adapter": _adapters(given, adapter_out),
    }
    return report, agreed.overlap_mean


def verdict(overlap: Estimate, judged: dict[str, Any] | None) -> dict[str, Any]:
    """The verdict card as the report holds it; `judged` is `report["judge"]` when asked."""
    from judge.embeddings import JudgeSplit, verdict_card

    card = verdict_card(
        overlap,
        judge=None
        if judged is None
        else JudgeSplit(better=judged["better"], worse=judged["worse"], same=judged["same"]),
        k=K,
    )
    return {"verdict": card.verdict.value, "reasons": list(card.reasons)}


def _threshold_rows(
    given: ReportInput,
    old_nb: Neighbours,
    new_nb: Neighbours,
    cutoffs: Sequence[float],
    labels: list[tuple[int, int, bool]] | None,
    keep: Literal["precision", "recall"],
) -> list[dict[str, Any]]:
    import numpy as np

    from judge.embeddings import map_threshold, normalise, threshold_keeping

    labelled: tuple[Any, Any, Any] | None = None
    if labels:
        q = np.array([p[0] for p in labels])
        d = np.array([p[1] for p in labels])

        def pair_scores(side: Literal["old", "new"]) -> Any:
            queries = given.old_queries if side == "old" else given.new_queries
            a = normalise(queries)[q]
            b = normalise(given.corpus(side))[d]
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
            kept = threshold_keeping(*labelled, cutoff, keep=keep)
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


def _adapters(given: ReportInput, adapter_out: Path | None) -> dict[str, Any]:
    from judge.embeddings import evaluate

    queries = len(given.query_ids)
    documents = 0 if given.document_ids is None else len(given.document_ids)
    train = train_pairs(queries, documents)
    found: dict[str, Any] = {
        "pairs": queries + documents,
        "train_pairs": train,
        "min_pairs": min_pairs(),
        "measured": train >= min_pairs() and queries >= MIN_HELD_OUT_QUERIES * 5,
    }
    held = "texts" if given.self_corpus else "queries"
    if train < min_pairs():
        found["reason"] = (
            f"fewer than {min_pairs():,} pairs to fit on ({train:,} after holding out 20% of"
            f" the {queries:,} {held}): adapter retention not measured"
        )
    elif not found["measured"]:
        found["reason"] = (
            f"fewer than {MIN_HELD_OUT_QUERIES * 5} queries ({queries}): too few held out to"
            " measure adapter retention"
        )
    if not found["measured"]:
        return found
    reports: dict[str, AdapterReport] = {}
    for kind in ("ridge", "procrustes"):
        if given.self_corpus:
            reports[kind] = _self_corpus_adapter(kind, given)
        else:
            assert given.old_documents is not None and given.new_documents is not None
            reports[kind] = evaluate(
                kind,
                given.old_queries,
                given.new_queries,
                given.old_documents,
                given.new_documents,
                old_model=given.old_label,
                new_model=given.new_label,
                hold_out=HOLD_OUT,
                k=K,
            )
    for kind, report in reports.items():
        found[kind] = {
            "retention": figure(report.retention),
            "held_out_queries": report.held_out_queries,
        }
    if adapter_out is not None:
        best = max(reports.values(), key=lambda r: r.retention.mean)
        best.adapter.save(adapter_out)
        found["written"] = {"path": str(adapter_out), "kind": best.adapter.kind}
    return found


def _self_corpus_adapter(kind: str, given: ReportInput) -> AdapterReport:
    """With no corpus: fit on 80% of the texts, measure retention on the other 20% against an
    index of the 80% (so a held-out text never finds itself)."""
    import numpy as np

    from judge.embeddings import (
        Adapter,
        AdapterReport,
        estimate,
        fit_procrustes,
        fit_ridge,
        normalise,
        retention,
    )

    old, new = normalise(given.old_queries), normalise(given.new_queries)
    order = np.random.default_rng(0).permutation(len(old))
    held, train = order[: held_out(len(old))], order[held_out(len(old)) :]
    fitted = (
        fit_ridge(new[train], old[train])
        if kind == "ridge"
        else fit_procrustes(new[train], old[train])
    )
    kept = estimate(retention(fitted, new[held], old[held], old[train], k=K))
    adapter = Adapter(
        kind=fitted.kind,
        weight=fitted.weight,
        bias=fitted.bias,
        old_model=given.old_label,
        new_model=given.new_label,
        regularisation=fitted.regularisation,
        figures={"train_pairs": float(train.size), "held_out_queries": float(held.size)},
    )
    return AdapterReport(
        adapter=adapter, retention=kept, train_pairs=int(train.size),
        held_out_queries=int(held.size), k=K,
    )  # fmt: skip
