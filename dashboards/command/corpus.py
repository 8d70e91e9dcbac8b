"""What `shadowjudge embeddings reembed` reads and writes: a corpus of (id, text), and vectors
appended so that a killed run resumes where it stopped.

**The corpus**: JSONL, one `{"id": ..., "text": ...}` object a line (ids are strings or
integers, texts non-empty strings; an optional `segment` is kept, as a string, for reports per
segment; other keys are ignored), or Parquet with `id` and `text`
columns (read with pyarrow, which chDB already requires). It is read twice: once to check it
whole before anything is embedded — a line without an id or a text, or an id seen before, is
an error naming the line (`corpus.jsonl:17: ...`) — and once to embed it, streaming.

**The output**: JSONL, one `{"id", "model", "version", "vector"}` object a line (vector: the
float32 values as JSON numbers), so every line is loadable on its own by whatever builds the
new index; beside it `OUT.meta.json` records the whole model spec (provider, model, version,
dimensions, normalisation, prefix) once. Lines are appended a batch at a time with one write
and an fsync. A SIGKILL can leave at most a torn last line: on start it is cut off, the ids
on complete lines are done, and the rest are embedded — through the cache, so what had been
embedded but not yet written costs no second call. Resuming with another model spec than
the meta file's is refused. JSONL over `.npy`: an append-only text file needs no rewrite to
grow and survives a torn write line by line, and loading it is one `orjson.loads` a line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

if TYPE_CHECKING:  # numpy and the client load when a command embeds, not for every command
    import numpy as np
    import numpy.typing as npt

    from mirror.embeddings import EmbeddingModel

Id = str | int


class CorpusError(ValueError):
    """The corpus or the output cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    id: Id
    text: str
    segment: str | None = None
    """The optional `segment` field (a string), for reports per segment."""


def read_corpus(path: Path) -> Iterator[Row]:
    """The corpus's rows in order; CorpusError names a malformed line (not duplicates)."""
    if path.suffix == ".parquet":
        yield from _read_parquet(path)
        return
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{number}: not JSON: {exc}") from exc
            if not isinstance(item, dict):
                raise CorpusError(f"{path}:{number}: not a JSON object")
            yield _row(
                path,
                number,
                item.get("id", _MISSING),
                item.get("text", _MISSING),
                item.get("segment"),
            )


_MISSING = object()


def _row(path: Path, number: int, id_: Any, text: Any, segment: Any = None) -> Row:
    where = f"{path}:{number}"
    if id_ is _MISSING or id_ is None:
        raise CorpusError(f'{where}: no "id"')
    if isinstance(id_, bool) or not isinstance(id_, str | int):
        raise CorpusError(f'{where}: "id" must be a string or an integer, got {id_!r}')
    if text is _MISSING or text is None:
        raise CorpusError(f'{where}: no "text" (id {id_!r})')
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(f'{where}: "text" must be a non-empty string (id {id_!r})')
    return Row(number, id_, text, None if segment is None else str(segment))


def _read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds: all mean unreadable
        raise CorpusError(f"{path}: not a Parquet file: {exc}") from exc
    names = set(parquet.schema_arrow.names)
    for column in ("id", "text"):
        if column not in names:
            raise CorpusError(f"{path}: no {column!r} column (columns: {sorted(names)})")
    number = 0
    columns = ["id", "text", *(["segment"] if "segment" in names else [])]
    for batch in parquet.iter_batches(batch_size=4096, columns=columns):
        for item in batch.to_pylist():
            number += 1
            yield _row(path, number, item["id"], item["text"], item.get("segment"))


def check_corpus(path: Path) -> set[Id]:
    """Read the whole corpus once: its ids, or CorpusError naming the bad line."""
    seen: dict[Id, int] = {}
    unit = "row" if path.suffix == ".parquet" else "line"
    for row in read_corpus(path):
        first = seen.setdefault(row.id, row.line)
        if first != row.line:
            raise CorpusError(
                f"{path}:{row.line}: duplicate id {row.id!r} (first on {unit} {first})"
            )
    return set(seen)


class VectorOutput:
    """The append-only JSONL of vectors; `open()` takes up where a killed run stopped."""

    def __init__(self, path: Path, model: EmbeddingModel, handle: BinaryIO, done: set[Id]) -> None:
        self.path = path
        self.model = model
        self._handle = handle
        self.done = done

    @classmethod
    def open(cls, path: Path, model: EmbeddingModel) -> VectorOutput:
        meta_path = meta_file(path)
        meta = model_meta(model)
        if meta_path.exists():
            recorded = orjson.loads(meta_path.read_bytes())
            if recorded != meta:
                raise CorpusError(
                    f"{path} holds vectors of {_describe(recorded)}, not {_describe(meta)}:"
                    " name another --out, or remove it to start over"
                )
        elif path.exists() and path.stat().st_size > 0:
            raise CorpusError(f"{path} exists without {meta_path.name}: not a reembed output")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(meta_path, orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        done = _complete_ids(path) if path.exists() else set()
        # vectors are sensitive (text can be recovered from them): owner-only, like the cache
        handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        return cls(path, model, handle, done)

    def append(self, ids: Sequence[Id], vectors: npt.NDArray[np.float32]) -> None:
        """One batch: a single write, then flushed and fsynced before returning."""
        model, version = self.model.model, self.model.version_label
        chunk = b"".join(
            orjson.dumps(
                {"id": id_, "model": model, "version": version, "vector": vector},
                option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
            )
            for id_, vector in zip(ids, vectors, strict=True)
        )
        self._handle.write(chunk)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done.update(ids)

    def close(self) -> None:
        self._handle.close()


def meta_file(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def model_meta(model: EmbeddingModel) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "provider": model.provider,
        "model": model.model,
        "version": model.version_label,
        "dimensions": model.dimensions,
        "normalize": model.normalize,
        "prefix": model.document_prefix,
    }
    if model.document_input_type:  # only when set: outputs made before resume as they were
        meta["input_type"] = model.document_input_type
    return meta


def _describe(meta: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in meta.items())


def _complete_ids(path: Path) -> set[Id]:
    """The ids on complete lines; a torn last line (no newline: a killed write) is cut off."""
    with path.open("r+b") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
    done: set[Id] = set()
    for number, line in enumerate(data[:end].splitlines(), start=1):
        try:
            done.add(orjson.loads(line)["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorpusError(f"{path}:{number}: not a vector line: {exc}") from exc
    return done


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
