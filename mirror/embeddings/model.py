"""What an embedding model is, for the cache and the client: `EmbeddingModel`.

A vector depends on more than the model's name: the width asked for (`dimensions`), whether
the rows are L2-normalised after the provider answers, and the prefix put before the text
(e5 wants `query: ` on queries and `passage: ` on documents; a vector of `query: x` is not one
of `passage: x`), and the `input_type` sent with the request per role (models such as
Voyage's, Cohere's or NVIDIA's retrieval embedders take the role as a request field,
`input_type: "query"` / `"document"`, instead of a prefix). `version` is a label the team
chooses (a provider's dated snapshot, a fine-tune's tag); change it and the cache treats the
model as new. All of these are part of the cache key (`CacheKey`), so no vector is reused
where it would differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a text is to the retrieval: what is searched for, or what is searched in."""

    QUERY = "query"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """One embedding model as called: provider, name, version label and request options.

    `provider` names an entry of the settings' `providers` (where to call, with which key). It
    is not part of the cache key: the same model behind two endpoints (a proxy, a region) gives
    the same vectors; where it does not, give it another `version`.
    `dimensions` is sent as the API's `dimensions` (None: the model's native width).
    `query_input_type` / `document_input_type`, when set, are sent as the request's
    `input_type` for that role (empty: no `input_type` field, as OpenAI's own models want).
    """

    provider: str
    model: str
    version: str = ""
    dimensions: int | None = None
    normalize: bool = True
    query_prefix: str = ""
    document_prefix: str = ""
    query_input_type: str = ""
    document_input_type: str = ""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("an embedding model needs a name")
        if self.dimensions is not None and self.dimensions < 1:
            raise ValueError(f"dimensions must be positive, got {self.dimensions}")

    @property
    def version_label(self) -> str:
        """The version as recorded: the label given, else the model's name."""
        return self.version or self.model

    @property
    def label(self) -> str:
        """`model@version`, how outputs and logs name it."""
        return f"{self.model}@{self.version_label}"

    def prefix(self, role: Role) -> str:
        return self.query_prefix if role is Role.QUERY else self.document_prefix

    def input_type(self, role: Role) -> str:
        """The request's `input_type` for texts of this role ("": none is sent)."""
        return self.query_input_type if role is Role.QUERY else self.document_input_type

    def key(self, text: str, role: Role) -> CacheKey:
        return CacheKey(
            text_sha256=text_digest(text),
            model=self.model,
            version=self.version_label,
            dimensions=self.dimensions,
            normalize=self.normalize,
            prefix=self.prefix(role),
            input_type=self.input_type(role),
        )


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What one cached vector is the vector of. The text itself is never stored, its hash is."""

    text_sha256: bytes
    model: str
    version: str
    dimensions: int | None
    normalize: bool
    prefix: str
    input_type: str = ""


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
