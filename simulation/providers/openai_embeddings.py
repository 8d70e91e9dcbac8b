"""Bodies of the fake OpenAI embeddings endpoint (``POST /v1/embeddings``).

``input`` is a string, a list of strings, a list of token ids or a list of such lists, as the
API takes it; ``dimensions`` shortens the vectors; ``encoding_format`` is ``float`` (JSON
numbers) or ``base64`` (little-endian float32, what the SDK asks for by default); ``usage``
counts the input tokens.

Two backends. A model named in ``embedders`` (see ``simulation.embeddings``: wordllama and
two multilingual-e5-small variants, run offline) embeds the text it is given for real; it takes
text only (token ids belong to another tokenizer) and ``dimensions`` only as far as the
model allows (Matryoshka-trained models shorten, others take only their native width, the
answer OpenAI gives for ``text-embedding-ada-002``). Any other model name gets unit vectors
seeded by a hash of the input (deterministic, meaningless), 1536 wide (3072 for ``*-large``).
Token counts: the model's own tokenizer for real models, the fake's estimate otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from ..embeddings import Embedder, EmbeddingInputError, shorten
from .asgi import dumps
from .reply import estimate_tokens


@lru_cache(maxsize=4096)
def embedding_vector(item: str, dimensions: int) -> bytes:
    """A unit vector of little-endian float32, seeded by the input."""
    rng = random.Random(hashlib.sha256(item.encode("utf-8", "surrogatepass")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return struct.pack(f"<{dimensions}f", *(v / norm for v in values))


def embedding_items(body: dict[str, Any]) -> list[Any]:
    """The inputs of a request, each a string or a list of token ids."""
    raw = body["input"]
    items: list[Any] = raw if isinstance(raw, list) and raw else [raw]
    if items and all(isinstance(i, int) for i in items):
        items = [items]  # one input given as a list of token ids
    if any(i == "" for i in items):
        raise EmbeddingInputError("Invalid 'input': empty strings are not allowed.", "input")
    return items


def requested_dimensions(body: dict[str, Any], native: int, truncatable: bool) -> int:
    """``dimensions`` as the model allows it; the seeded backend (``native=0``) takes any."""
    dimensions = body.get("dimensions")
    if dimensions is None:
        return native
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        message = "Invalid 'dimensions': expected a positive integer."
        raise EmbeddingInputError(message, "dimensions")
    if native and dimensions != native and not truncatable:
        raise EmbeddingInputError(
            "This model does not support specifying dimensions.", "dimensions"
        )
    if native and dimensions > native:
        raise EmbeddingInputError(
            f"Invalid 'dimensions': this model has at most {native}.", "dimensions"
        )
    return dimensions


def _real_vectors(model: Embedder, items: list[Any], dimensions: int) -> tuple[list[bytes], int]:
    if not all(isinstance(item, str) for item in items):
        raise EmbeddingInputError(
            f"Invalid 'input': {model.name} takes text, not token ids.", "input"
        )
    vectors, tokens = model.embed(items)
    if dimensions < vectors.shape[1]:
        vectors = shorten(vectors, dimensions)
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    return [row.tobytes() for row in rows], sum(tokens)


def _seeded_vectors(items: list[Any], dimensions: int) -> tuple[list[bytes], int]:
    vectors, tokens = [], 0
    for item in items:
        text = item if isinstance(item, str) else dumps(item).decode()
        tokens += estimate_tokens(text) if isinstance(item, str) else len(item)
        vectors.append(embedding_vector(text, dimensions))
    return vectors, tokens


def embeddings_payload(body: dict[str, Any], embedders: Mapping[str, Embedder]) -> bytes:
    """The response body; raises ``EmbeddingInputError`` for a request to answer with 400.

    Blocking for a real model (it runs the model): call it from a worker thread.
    """
    items = embedding_items(body)
    name = str(body["model"])
    model = embedders.get(name)
    if model is not None:
        dimensions = requested_dimensions(body, model.dimensions, model.truncatable)
        vectors, tokens = _real_vectors(model, items, dimensions)
    else:
        dimensions = requested_dimensions(body, 0, truncatable=True) or (
            3072 if name.endswith("-large") else 1536
        )
        vectors, tokens = _seeded_vectors(items, dimensions)
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": (
                base64.b64encode(vector).decode()
                if as_base64
                else list(struct.unpack(f"<{dimensions}f", vector))
            ),
        }
        for index, vector in enumerate(vectors)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return dumps(payload, indent=True)
