"""An embedding migration's report from traffic: the reference set read from the store
(`embedding_reference`) turned into the same report `embeddings compare` makes from files
(`embedding_report.build`), for `embeddings report`, the API and the page alike.

The queries are the query-role texts and the corpus the document-role texts. With no document
texts (a team that routes only its queries through the sidecar) every text is the corpus and
each query's neighbours are its nearest OTHER texts; the report says so in `notes`. With fewer
than `MIN_QUERIES` queries (or a corpus of no more than k texts) there is no verdict: the
report says how many texts there are and what is needed (`insufficient`), and holds no figures.
With a corpus under `SMALL_CORPUS` texts a note gives the overlap chance alone produces (k/N):
the verdict's reference points were measured on 5,000 texts.
The thresholds mapped are the migration's `embeddings.thresholds`. The judge's and reviewers'
labels in the store are about chat answers, not retrieval, so no labelled (query, document)
pair is read from traffic; a team's own relevance labels (`labels`: pairs of text hashes, the
report's ids or full) give, per threshold, the cut-off keeping the old precision or recall,
over the labelled pairs whose two texts are in the reference set read (`labels` in the report
says how many were).
The LLM judge's stored verdicts on the least-agreeing queries (`list_judge`, kept by
`embeddings report --judge` and the page's judge button) are merged in where the query and
both its lists are the ones judged, each item with its full `query_hash`; the report's `judge`
is their split and the verdict card uses it, exactly as `--judge` does in the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dashboards.analysis import embedding_report, list_judge
from dashboards.analysis.embedding_reference import ReferenceSet, read_reference
from dashboards.analysis.queries import Reader
from judge.store.list_verdicts import read_list_verdicts

if TYPE_CHECKING:
    from judge.embeddings import Estimate
    from mirror.migrations import MigrationSettings

MIN_QUERIES = 20
SMALL_CORPUS = 1000
"""Below this many corpus texts the report says how much overlap chance alone gives."""
NO_SEGMENT = "(no segment)"
#: A text's id in the report: the first hex digits of its SHA-256.
ID_DIGITS = 12


@dataclass(frozen=True, slots=True)
class EmbeddingMigration:
    """What the report needs of a migration's settings (`embeddings:` and its arms)."""

    name: str
    arms: tuple[str, ...]
    reference_size: int = 5000
    retention_days: int = 30
    thresholds: tuple[float, ...] = ()

    @classmethod
    def from_settings(cls, migration: MigrationSettings) -> EmbeddingMigration | None:
        """None for a migration without `embeddings:`."""
        found = migration.embeddings
        if found is None:
            return None
        return cls(
            name=migration.name,
            arms=tuple(arm.name for arm in migration.arms),
            reference_size=found.reference_size,
            retention_days=found.retention_days,
            thresholds=tuple(found.thresholds),
        )


class UnknownArmError(ValueError):
    """The arm asked for is not one of the migration's."""


def choose_arm(migration: EmbeddingMigration, arm: str | None) -> str:
    """`arm`, or the migration's first when none is given."""
    if arm is None:
        return migration.arms[0]
    if arm not in migration.arms:
        raise UnknownArmError(
            f"migration {migration.name!r} has no arm {arm!r};"
            f" its arms: {', '.join(migration.arms)}"
        )
    return arm


def traffic_report(
    reader: Reader,
    migration: EmbeddingMigration,
    arm: str,
    *,
    least: int = 10,
    adapter_out: Path | None = None,
    replays: dict[str, Any] | None = None,
    labels: Sequence[tuple[str, str, bool]] | None = None,
    keep: Literal["precision", "recall"] = "precision",
) -> tuple[dict[str, Any], Estimate | None]:
    """The report (with `verdict`, None when there is too little), and the overlap@10
    estimate unrounded (None without a verdict). `adapter_out`: where the adapter with the
    higher retention is written as `.npz`, when adapter retention is measured. `replays`:
    `read_replays` of the arm, when the caller has read it already. `labels`: (query text
    hash, document text hash, relevant), each hash in full or its first 12 hex digits."""
    found = read_reference(
        reader,
        migration.name,
        arm,
        size=migration.reference_size,
        retention_days=migration.retention_days,
    )
    head = _head(found)
    if replays is None:
        replays = read_replays(reader, migration, arm)
    head["replays"] = replays
    failed = _failed(replays)
    queries, documents = found.queries, found.documents
    problem = _too_few(len(queries), len(documents))
    if problem is not None:
        return {
            **head,
            "insufficient": problem + (f"; {failed}" if failed else ""),
            "verdict": None,
        }, None
    notes: list[str] = list(head.pop("notes"))
    if failed:
        notes.append(failed)
    if not len(documents):
        notes.append(
            "no document texts in the reference set (only queries go through the sidecar):"
            " every text is the corpus, and each query's neighbours are its nearest other texts"
        )
    candidates = len(documents) or len(queries) - 1
    if candidates < SMALL_CORPUS:
        k = embedding_report.K
        notes.append(
            f"a corpus of {candidates:,} texts: two unrelated rankings share {k / candidates:.1%}"
            f" of their top {k} by chance, so overlap reads higher than on the 5,000 texts the"
            " reference points were measured on"
        )
    given = embedding_report.ReportInput(
        old_label=found.primary,
        new_label=found.candidate,
        query_ids=[h[:ID_DIGITS] for h in queries.hashes],
        query_texts=queries.texts,
        segments=[s or NO_SEGMENT for s in queries.segments],
        old_queries=queries.primary,
        new_queries=queries.candidate,
    )
    if len(documents):
        given = replace(
            given,
            document_ids=[h[:ID_DIGITS] for h in documents.hashes],
            document_texts=documents.texts,
            old_documents=documents.primary,
            new_documents=documents.candidate,
        )
    found_labels: list[tuple[int, int, bool]] | None = None
    if labels is not None:
        found_labels = labelled_pairs(
            labels, queries.hashes, documents.hashes if len(documents) else queries.hashes
        )
        head["labels"] = {"given": len(labels), "in_reference_set": len(found_labels), "keep": keep}
        if len(found_labels) < len(labels):
            notes.append(
                f"{len(labels) - len(found_labels):,} of the {len(labels):,} labelled pairs are"
                " left out: their query or document is not in the reference set read"
            )
    report, overlap = embedding_report.build(
        given,
        cutoffs=migration.thresholds,
        labels=found_labels or None,
        keep=keep,
        least=least,
        adapter_out=adapter_out,
    )
    report = {**head, "notes": notes, **report}
    full = {h[:ID_DIGITS]: h for h in queries.hashes}
    least_rows = report["least_agreeing"]
    for item in least_rows:
        item["query_hash"] = full[item["query_id"]]
    stored = read_list_verdicts(
        reader,
        migration=migration.name,
        arm=arm,
        models=found.models,
        prompt_version=list_judge.PROMPT_VERSION,
        query_hashes=[item["query_hash"] for item in least_rows],
        days=migration.retention_days,
    )
    list_judge.merge_stored(least_rows, stored)
    judged = list_judge.judge_section(least_rows)
    if judged is not None:
        report["judge"] = judged
    report["verdict"] = embedding_report.verdict(overlap, judged)
    return report, overlap


def labelled_pairs(
    labels: Sequence[tuple[str, str, bool]], queries: Sequence[str], corpus: Sequence[str]
) -> list[tuple[int, int, bool]]:
    """(query index, corpus index, relevant) of the labelled pairs whose two texts are there;
    a hash matches in full or by the report's id (its first `ID_DIGITS` hex digits)."""
    query_at = _positions(queries)
    corpus_at = _positions(corpus)
    found = []
    for query, document, relevant in labels:
        q, d = query_at.get(query.lower()), corpus_at.get(document.lower())
        if q is not None and d is not None:
            found.append((q, d, relevant))
    return found


def _positions(hashes: Sequence[str]) -> dict[str, int]:
    at: dict[str, int] = {}
    for i, full in enumerate(hashes):
        at[full] = at[full[:ID_DIGITS]] = i
    return at


def read_replays(reader: Reader, migration: EmbeddingMigration, arm: str) -> dict[str, Any]:
    """The arm's replayed calls within the retention window, from the hourly aggregate (the
    judge version with the most pairs, so a re-judged window is not counted twice), and the
    latest failure's kind and message when some failed: a reference set that stays empty
    because every call to the candidate fails (a missing key, a model name the provider does
    not serve) says why."""
    params: dict[str, Any] = {
        "migration": migration.name,
        "arm": arm,
        "days": migration.retention_days,
    }
    counts = reader.select(
        """SELECT judge_version, sum(pairs) AS pairs, sum(candidate_errors) AS failed
FROM comparison_stats_hourly
WHERE migration = {migration:String} AND arm = {arm:String} AND segment = '*'
    AND hour >= now() - INTERVAL {days:UInt32} DAY
GROUP BY judge_version
ORDER BY pairs DESC, judge_version
LIMIT 1""",
        params,
    )
    pairs = int(counts[0]["pairs"]) if counts else 0
    failed = int(counts[0]["failed"]) if counts else 0
    latest: dict[str, str] | None = None
    if failed:
        rows = reader.select(
            """SELECT candidate_error AS kind, candidate_error_message AS message
FROM comparisons
WHERE migration = {migration:String} AND arm = {arm:String} AND candidate_error != ''
    AND captured_at >= now64() - INTERVAL {days:UInt32} DAY
ORDER BY captured_at DESC
LIMIT 1""",
            params,
        )
        if rows:
            latest = {"kind": str(rows[0]["kind"]), "message": str(rows[0]["message"])}
    return {
        "days": migration.retention_days,
        "pairs": pairs,
        "failed": failed,
        "latest_error": latest,
    }


def _failed(replays: dict[str, Any]) -> str | None:
    if not replays["failed"]:
        return None
    said = (
        f"{replays['failed']:,} of the arm's {replays['pairs']:,} replayed calls failed"
        f" in the last {replays['days']} days"
    )
    latest = replays["latest_error"]
    if latest is not None:
        said += f" (latest: {latest['kind']}: {latest['message'][:200]})"
    return said


def _head(found: ReferenceSet) -> dict[str, Any]:
    return {
        "migration": found.migration,
        "arm": found.arm,
        "from": found.primary,
        "to": found.candidate,
        "queries": len(found.queries),
        "documents": len(found.documents),
        "corpus": "documents" if len(found.documents) else "queries",
        "k": embedding_report.K,
        "reference": {
            "size": found.size,
            "retention_days": found.retention_days,
            "available": found.available,
            "taken": found.taken,
            "allocation": "equal",
            "strata": [
                {
                    "role": s.role,
                    "segment_key": s.segment_key,
                    "available": s.available,
                    "taken": s.taken,
                }
                for s in found.strata
            ],
        },
        "notes": [
            f"rows of an earlier model pair in the window are left out: {other}"
            for other in found.other_models
        ],
    }


def _too_few(queries: int, documents: int) -> str | None:
    k = embedding_report.K
    if queries < MIN_QUERIES:
        return (
            f"{queries} query texts in the reference set; at least {MIN_QUERIES} are needed"
            " for a verdict (let more traffic through the migration, or lengthen"
            " embeddings.retention_days)"
        )
    if documents and documents <= k:
        return (
            f"{documents} document texts in the reference set; more than {k} are needed to"
            f" compare top-{k} neighbour lists"
        )
    return None
