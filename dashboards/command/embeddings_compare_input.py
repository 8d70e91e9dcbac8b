"""What `shadowjudge embeddings compare` reads: the queries and documents (JSONL or Parquet of
id + text, an optional `segment`), the `--thresholds` list and the `--labels` file (JSONL of
`query`, `document`, `relevant`). Every error names the flag, and the line where there is one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.command.corpus import CorpusError, Id, check_corpus, read_corpus
from mirror.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Texts:
    ids: list[Id]
    texts: list[str]
    segments: list[str] | None


def read_texts(path: Path, flag: str) -> Texts:
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file")
    check_corpus(path)
    rows = list(read_corpus(path))
    segments = [row.segment for row in rows]
    labelled = [s for s in segments if s is not None]
    if labelled and len(labelled) != len(rows):
        raise CorpusError(f"{path}: some rows have a segment and some do not")
    return Texts(
        ids=[row.id for row in rows],
        texts=[row.text for row in rows],
        segments=labelled or None,
    )


def parse_thresholds(raw: str) -> list[float]:
    values = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            value = float(part)
        except ValueError as exc:
            raise ConfigError(f"--thresholds {raw}: {part!r} is not a number") from exc
        if not -1.0 <= value <= 1.0:
            raise ConfigError(f"--thresholds {raw}: {part} is not a cosine similarity in [-1, 1]")
        values.append(value)
    return values


def labelled_lines(path: Path, expected: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, item) for each line of a `--labels` JSONL file: `where` names the line for an
    error, `item` is an object with a boolean `relevant` (else an error saying `expected`)."""
    if not path.is_file():
        raise ConfigError(f"--labels {path}: no such file")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"--labels {path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(item, dict) or not isinstance(item.get("relevant"), bool):
            raise ConfigError(f"{where}: expected {expected}")
        yield where, item


def read_labels(path: Path, queries: Texts, documents: Texts) -> list[tuple[int, int, bool]]:
    """(query index, document index, relevant) for each labelled pair."""
    query_at = {id_: i for i, id_ in enumerate(queries.ids)}
    document_at = {id_: i for i, id_ in enumerate(documents.ids)}
    pairs = []
    for where, item in labelled_lines(path, '{"query", "document", "relevant": true|false}'):
        if item.get("query") not in query_at:
            raise ConfigError(f"{where}: query id {item.get('query')!r} is not in --queries")
        if item.get("document") not in document_at:
            raise ConfigError(
                f"{where}: document id {item.get('document')!r} is not in --documents"
            )
        pairs.append((query_at[item["query"]], document_at[item["document"]], item["relevant"]))
    if not pairs:
        raise ConfigError(f"--labels {path}: no labelled pairs")
    return pairs
