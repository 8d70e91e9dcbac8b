"""The embedding tests' corpus and a client-side helper that embeds it through the fake.

``tests/data/embeddings/corpus.jsonl.gz`` (see its README): 6,000 sentences from CPython's own
documentation, shuffled; queries come from the first 1,000 rows and documents from the
5,000 after them, so a smaller sample is a subset of the benchmark's 1,000 × 5,000. Embedding
goes through the official ``openai`` SDK against the fake OpenAI endpoint serving the offline
models, with each model's prefixes added here, by the caller, as an application does.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import openai
from filelock import FileLock

CORPUS = Path(__file__).resolve().parents[2] / "data" / "embeddings" / "corpus.jsonl.gz"
WORDLLAMA = "wordllama-l2"
E5 = "multilingual-e5-small"
E5_ENPT = "multilingual-e5-small-enpt"
# (query prefix, document prefix) each model expects
PREFIXES = {WORDLLAMA: ("", ""), E5: ("query: ", "passage: "), E5_ENPT: ("query: ", "passage: ")}


@dataclass(frozen=True, slots=True)
class Texts:
    ids: tuple[str, ...]
    segments: tuple[str, ...]
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Texts:
        return Texts(self.ids[:n], self.segments[:n], self.texts[:n])


QUERY_ROWS = 1000


def load(queries: int, documents: int) -> tuple[Texts, Texts]:
    """The first ``queries`` rows as queries, ``documents`` rows from row 1,000 on as documents."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    if queries > QUERY_ROWS or QUERY_ROWS + documents > len(rows):
        raise ValueError(f"at most {QUERY_ROWS} queries and {len(rows) - QUERY_ROWS} documents")

    def texts(part: list[dict[str, str]]) -> Texts:
        return Texts(
            ids=tuple(r["id"] for r in part),
            segments=tuple(r["segment"] for r in part),
            texts=tuple(r["text"] for r in part),
        )

    return texts(rows[:queries]), texts(rows[QUERY_ROWS : QUERY_ROWS + documents])


def embed(
    client: openai.OpenAI, model: str, texts: Texts, *, query: bool, batch: int = 200
) -> npt.NDArray[np.float32]:
    """The model's vectors for the texts (default base64 encoding, as the SDK asks)."""
    prefix = PREFIXES[model][0 if query else 1]
    rows: list[list[float]] = []
    for start in range(0, len(texts), batch):
        chunk = [prefix + text for text in texts.texts[start : start + batch]]
        response = client.embeddings.create(model=model, input=chunk)
        rows += [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
    return np.asarray(rows, dtype=np.float32)


Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Sample:
    """Queries and documents with each model's vectors of them."""

    queries: Texts
    documents: Texts
    vectors: dict[str, tuple[Vectors, Vectors]]  # model -> (query vectors, document vectors)


#: What a test session embeds at least, once: the test modules' samples are its prefixes (e5
#: takes ~30 texts/s here, so two modules embedding their own samples cost ~15 s more).
SESSION_SAMPLE = (80, 320)
_embedded: dict[tuple[str, tuple[str, ...]], Sample] = {}


def embed_sample(
    base_url: str,
    queries: int,
    documents: int,
    models: tuple[str, ...] = (WORDLLAMA, E5, E5_ENPT),
    *,
    shared: Path | None = None,
) -> Sample:
    """``load(queries, documents)`` embedded by each model through the fake at ``base_url``:
    sliced from the session's sample when it holds them (``load`` keeps smaller samples
    prefixes of larger ones), embedded otherwise. With ``shared`` (a directory every process
    of the test run sees), the first process to embed the sample leaves it there and the
    others read it: the test workers would each spend a minute embedding the same texts."""
    found = _embedded.get((base_url, models))
    if found is None or len(found.queries) < queries or len(found.documents) < documents:
        size = (max(queries, SESSION_SAMPLE[0]), max(documents, SESSION_SAMPLE[1]))
        if shared is None:
            found = _embed(base_url, *size, models)
        else:
            found = _embed_shared(shared, base_url, *size, models)
        _embedded[(base_url, models)] = found
    return Sample(
        found.queries.head(queries),
        found.documents.head(documents),
        {m: (q[:queries], d[:documents]) for m, (q, d) in found.vectors.items()},
    )


def _embed(base_url: str, queries: int, documents: int, models: tuple[str, ...]) -> Sample:
    query_texts, document_texts = load(queries, documents)
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", timeout=300) as client:
        vectors = {
            model: (
                embed(client, model, query_texts, query=True),
                embed(client, model, document_texts, query=False),
            )
            for model in models
        }
    return Sample(query_texts, document_texts, vectors)


def _embed_shared(
    shared: Path, base_url: str, queries: int, documents: int, models: tuple[str, ...]
) -> Sample:
    name = f"sample-{queries}x{documents}-{'+'.join(models)}.npz"
    with FileLock(shared / f"{name}.lock"):
        if (shared / name).exists():
            with np.load(shared / name) as stored:
                query_texts, document_texts = load(queries, documents)
                vectors = {m: (stored[f"{m}|query"], stored[f"{m}|document"]) for m in models}
                return Sample(query_texts, document_texts, vectors)
        sample = _embed(base_url, queries, documents, models)
        arrays = {
            f"{m}|{role}": v
            for m, pair in sample.vectors.items()
            for role, v in zip(("query", "document"), pair, strict=True)
        }
        with open(shared / f"{name}.tmp", "wb") as out:
            np.savez(out, **arrays)
        (shared / f"{name}.tmp").replace(shared / name)
        return sample
