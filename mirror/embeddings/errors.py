"""Errors of the embedding client. Retry loops ask `retriable`, as everywhere in the mirror."""

from __future__ import annotations

from mirror.errors import MirrorError


class EmbeddingError(MirrorError):
    """An embedding request failed; the message names the provider and the model."""


class EmbeddingRefused(EmbeddingError):
    """The provider answered 4xx (bad input, unknown model, no access): asking again won't help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class EmbeddingUnavailable(EmbeddingError):
    """No answer, or a transient one (429, 5xx): worth another attempt."""

    retriable = True

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EmbeddingAnswerError(EmbeddingError):
    """The answer was not the embeddings asked for (wrong count, width, or not JSON)."""
