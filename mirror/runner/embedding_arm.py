"""The runner's embedding arms, and the reference set they sample from traffic.

A migration with `embeddings` set (`mirror.migrations.EmbeddingMigrationSettings`) replays the
`openai.embeddings` calls it matches to each arm's embedding model. Unlike a chat arm, the
arm is not sent the app's request as it was: the texts are taken out of it, the app's own
prefix (the primary side's `query_prefix` / `document_prefix`) stripped, and embedded through
`mirror.embeddings.CachedEmbeddings` with the arm's `embedding` side (its prefix and
`input_type` per role, `dimensions`, normalisation, version label), in the client's batches,
within the provider's `runner.limits` (the runner's own limiters) and the migration's spend
cap. The SQLite cache (`runner.embedding_cache`, owner-only) is keyed by (text hash, model,
version, dimensions, normalisation, prefix, input type), so no text is embedded twice for one
model, however often the app sends it. The app's `encoding_format` does not matter: the
texts are embedded again.

What a pair carries (`ShadowPair.result`): as for any arm, status, error, latency, usage and
an `EmbeddingSummary` (count, width). Latency is the wall time of this pair's texts through
the cache (lookups, the requests for the texts not cached, and waiting for texts another pair
of this process is fetching right then): a call whose texts were all cached takes about a
millisecond, so latency figures of embedding arms describe the runner's work, not the model;
`usage.input_tokens` counts the tokens the provider reported for the requests this pair made
(0 when everything was cached), and the spend cap is settled with their price.

Inputs: a string or a list of strings. Token-id inputs (a list of integers, or of lists of
integers) cannot be re-embedded by another model's tokenizer: the arm is skipped with the
reason `token-id input` (counted in `shadowjudge_runner_skipped`).

Roles (`embeddings.role`): `query`, `document`, `segment.<label>` (the label's value, when it
is `query` or `document`; else as `auto`), or `auto`: the request's `input_type` when it names
one ("query" in it: query; "document" or "passage": document), else the app's prefix on the
text (the primary side's), else a segment label `role`, else one input is a query and a batch
is documents.

The reference set. Vectors are sensitive: only reference-set members' vectors leave the
runner, in their pair (`ShadowPair.reference`), for the judge to store with a TTL. A text's
key is the hex SHA-256 of its stripped text; per stratum (segment key, role) the set is the
k = `reference_size` smallest keys (a deterministic bottom-k sample: the same texts whatever
the order, the runner or the replays). This process keeps, per (migration, arm, stratum), the
k smallest keys it has sent (`BottomK`) and sends a text only when its key is below the k-th.
A text is entered when admitted, before its vectors are fetched, so the pairs in flight at
once do not all see the set as it was (and none sends it too). A restart sends a few more;
the expected number sent is about k(1 + ln(n/k)) per stratum of n distinct texts. The
primary model's vectors of those texts are fetched through the same cache with the primary
side's settings (the sidecar's captured answer is only a summary). A pair's reference texts
are kept within half the bus's message limit (`max_reference_bytes`), smallest keys first; a
text left out for size, because the primary's vectors could not be had, or because the spend
cap refused them, is taken out of the set again (a later call may carry it) and counted in
`shadowjudge_runner_embedding_reference_left_out` by reason. Memory: at most k keys per
stratum and role, for at most `max_strata` segment keys per arm: the calls of segment keys
first seen after that share the stratum `OTHER_STRATUM` (logged once), so a segment label with
a value per user cannot grow a runner without bound. Which keys those are depends on the order
a runner sees them in, so two runners may sample a late key under different strata; the
readers take what is stored, and the report names the shared stratum. Readers take the bottom
k by text_hash per stratum, so what one runner sent twice, or two runners both sent, changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import heapq
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from mirror.config import ProviderSettings
from mirror.embeddings import (
    CachedEmbeddings,
    EmbeddingAnswerError,
    EmbeddingCache,
    EmbeddingClient,
    EmbeddingError,
    EmbeddingModel,
    EmbeddingRefused,
    Role,
)
from mirror.embeddings.client import Matrix
from mirror.events import (
    Api,
    ArmResult,
    CapturedCall,
    EmbeddingSummary,
    ErrorInfo,
    ErrorKind,
    Output,
    ProviderKind,
    ReferenceText,
    Usage,
    encode_vector,
)
from mirror.migrations import (
    ArmSettings,
    EmbeddingMigrationSettings,
    EmbeddingSideSettings,
    MigrationSettings,
)
from mirror.pricing import PriceTable
from mirror.runner.limits import ProviderLimiter, SpendCap, estimate_cost
from mirror.runner.metrics import RunnerMetrics

log = logging.getLogger(__name__)

#: How often a long-running runner deletes cached vectors past their age.
PRUNE_EVERY_S = 86_400.0
TOKEN_IDS = "token-id input"
_HTTP_STATUS = re.compile(r": HTTP (\d{3}):")

#: Tokens the provider reported for the requests of the current task (see `_CountingClient`).
_TOKENS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "embedding_tokens", default=None
)


@dataclass(frozen=True, slots=True)
class CapturedText:
    """A text of a captured call, as the reference set and the arms see it."""

    text: str  # the app's prefix stripped
    role: Role
    key: str  # hex SHA-256 of `text`


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


#: The stratum of the segment keys first seen after `max_strata` others (see the docstring).
OTHER_STRATUM = "(other segments)"


def segment_key(segment: Mapping[str, str]) -> str:
    """The segment labels as sorted `k=v` joined by `,` ("" when none)."""
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items()))


def captured_texts(
    request: Mapping[str, Any], segment: Mapping[str, str], settings: EmbeddingMigrationSettings
) -> list[CapturedText] | str:
    """The texts of an embeddings request with their roles, or why there are none to embed."""
    raw = request.get("input")
    if isinstance(raw, str):
        inputs: list[str] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(_token_ids(item) for item in raw):
        return TOKEN_IDS
    else:
        return "no text input"
    primary = settings.primary
    fixed = _request_role(request, segment, settings.role)
    texts: list[CapturedText] = []
    for text in inputs:
        role = fixed
        if primary.query_prefix and text.startswith(primary.query_prefix):
            text = text.removeprefix(primary.query_prefix)
            role = role or Role.QUERY
        elif primary.document_prefix and text.startswith(primary.document_prefix):
            text = text.removeprefix(primary.document_prefix)
            role = role or Role.DOCUMENT
        if role is None:
            role = _fallback_role(segment, len(inputs))
        texts.append(CapturedText(text, role, text_key(text)))
    return texts


def _token_ids(item: object) -> bool:
    if isinstance(item, int) and not isinstance(item, bool):
        return True
    return isinstance(item, list) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in item
    )


def _role_word(value: object) -> Role | None:
    if not isinstance(value, str):
        return None
    word = value.lower()
    if "query" in word:
        return Role.QUERY
    if "document" in word or "passage" in word:
        return Role.DOCUMENT
    return None


def _request_role(
    request: Mapping[str, Any], segment: Mapping[str, str], setting: str
) -> Role | None:
    """The role every text of the request has, or None: decide per text (auto)."""
    if setting == "query":
        return Role.QUERY
    if setting == "document":
        return Role.DOCUMENT
    if setting.startswith("segment."):
        value = segment.get(setting.removeprefix("segment."))
        if value in ("query", "document"):
            return Role(value)
    return _role_word(request.get("input_type"))


def _fallback_role(segment: Mapping[str, str], count: int) -> Role:
    labelled = segment.get("role")
    if labelled in ("query", "document"):
        return Role(labelled)
    return Role.QUERY if count == 1 else Role.DOCUMENT


class BottomK:
    """The k smallest keys sent for one stratum: a max-heap of their integer values."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[int] = []  # negated, so the largest kept key is on top
        self._kept: set[int] = set()

    def admits(self, key: str) -> bool:
        """Whether a text of this key belongs in the set and was not sent yet."""
        value = int(key, 16)
        if value in self._kept:
            return False
        return len(self._heap) < self.k or value < -self._heap[0]

    def add(self, key: str) -> None:
        value = int(key, 16)
        if value in self._kept:
            return
        heapq.heappush(self._heap, -value)
        self._kept.add(value)
        if len(self._heap) > self.k:
            self._kept.discard(-heapq.heappop(self._heap))

    def discard(self, key: str) -> None:
        """Forget a key added but not sent after all. A key it pushed out stays out: the bound
        is then a little low until enough keys arrive (a text below it may be missed)."""
        value = int(key, 16)
        if value in self._kept:
            self._kept.discard(value)
            self._heap.remove(-value)
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def keys(self) -> list[str]:
        """The keys kept, smallest first (64 hex digits each)."""
        return [f"{-v:064x}" for v in sorted(self._heap, reverse=True)]


class _CountingClient(EmbeddingClient):
    """`EmbeddingClient` that adds each answer's `usage.prompt_tokens` to the calling task's
    counter (`_TOKENS`): `CachedEmbeddings` fetches misses in tasks that copy the caller's
    context, so a pair's requests are counted on its own arm."""

    async def _post(
        self,
        model: EmbeddingModel,
        url: URL,
        headers: Mapping[str, str],
        payload: bytes,
        count: int,
    ) -> tuple[Matrix, int | None]:
        vectors, tokens = await super()._post(model, url, headers, payload, count)
        counter = _TOKENS.get()
        if counter is not None and tokens is not None:
            counter.append(tokens)
        return vectors, tokens


@dataclass(slots=True)
class _Embedded:
    vectors: dict[tuple[str, Role], Matrix] = field(default_factory=dict)
    tokens: int = 0
    width: int | None = None


class EmbeddingArms:
    """Calls embedding arms for the runner and samples their reference set."""

    def __init__(
        self,
        *,
        providers: Mapping[str, ProviderSettings],
        limiters: Mapping[str, ProviderLimiter],
        prices: PriceTable,
        metrics: RunnerMetrics,
        cache: EmbeddingCache,
        timeout_s: float,
        max_attempts: int,
        max_reference_bytes: int | None,
    ) -> None:
        self._providers = dict(providers)
        self._prices = prices
        self._metrics = metrics
        self._cache = cache
        client = _CountingClient(
            providers,
            limiters=limiters,
            metrics=metrics.embedding,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
        )
        self.embeddings = CachedEmbeddings(client, cache, metrics.embedding)
        self.max_reference_bytes = max_reference_bytes
        self._sets: dict[tuple[str, str, str, Role], BottomK] = {}
        #: Per (migration, arm): the segment keys with a stratum of their own.
        self._strata: dict[tuple[str, str], set[str]] = {}
        self._strata_full: set[tuple[str, str]] = set()
        self._pruned_at = time.monotonic()

    async def close(self) -> None:
        await self.embeddings.client.close()
        await asyncio.to_thread(self._cache.close)

    def reference_set(self, migration: str, arm: str, segment: str, role: Role) -> BottomK | None:
        """The keys this process has sent for a stratum (for tests and checks)."""
        return self._sets.get((migration, arm, segment, role))

    async def run(
        self,
        call: CapturedCall,
        migration: MigrationSettings,
        arm: ArmSettings,
        cap: SpendCap,
    ) -> tuple[ArmResult, tuple[ReferenceText, ...]]:
        """One embedding arm's answer to a captured embeddings call, and the reference texts
        it brings. Never raises for provider trouble: that is the result's error."""
        settings = migration.embeddings
        assert settings is not None and call.request is not None
        side = arm.embedding or EmbeddingSideSettings()
        candidate = _model(arm.provider, arm.model, side)
        provider = self._providers.get(arm.provider)
        if provider is None:
            return self._skip(arm, f"provider {arm.provider!r} not configured"), ()
        if provider.kind is not ProviderKind.OPENAI:
            return self._skip(arm, "not an OpenAI-dialect provider (embeddings)"), ()
        if call.truncated.request:
            return self._skip(arm, "the request was not captured whole"), ()
        primary_status = call.primary.status_code or 0
        if 400 <= primary_status < 500 and primary_status != 429:
            return self._skip(arm, f"the primary rejected it ({primary_status})"), ()
        texts = captured_texts(call.request, call.segment, settings)
        if isinstance(texts, str):
            return self._skip(arm, texts), ()
        await self._prune_now_and_then()
        started = time.perf_counter()
        try:
            embedded = await self._embed(candidate, texts, cap, migration)
        except _Skip as skip:
            return self._skip(arm, skip.reason), ()
        except EmbeddingError as exc:
            return _failed(arm, exc, (time.perf_counter() - started) * 1000), ()
        latency_ms = (time.perf_counter() - started) * 1000
        result = ArmResult(
            provider=arm.provider,
            model=arm.model,
            status_code=200,
            latency_ms=latency_ms,
            output=Output(
                embeddings=EmbeddingSummary(
                    count=len(texts), dimensions=embedded.width, encoding="base64"
                )
            ),
            usage=Usage(input_tokens=embedded.tokens),
        )
        reference = await self._reference(call, migration, arm, texts, embedded, cap)
        return result, reference

    # -- the arm ---------------------------------------------------------------------------

    async def _embed(
        self,
        model: EmbeddingModel,
        texts: Sequence[CapturedText],
        cap: SpendCap,
        migration: MigrationSettings,
    ) -> _Embedded:
        """Every text's vector under `model`, through the cache, within the spend cap."""
        by_role: dict[Role, list[str]] = {}
        for text in texts:
            by_role.setdefault(text.role, []).append(text.text)
        body = {
            "model": model.model,
            "input": [model.prefix(role) + t for role, ts in by_role.items() for t in ts],
        }
        estimate = estimate_cost(
            self._prices, model.model, ProviderKind.OPENAI, body, Api.OPENAI_EMBEDDINGS
        )
        if estimate is None and migration.daily_spend_usd is not None:
            raise _Skip(f"no price for {model.model} under a spend cap")
        reservation = cap.try_reserve(estimate or 0.0)
        if reservation is None:
            raise _Skip("daily spend cap reached")
        counter: list[int] = []
        roles = list(by_role)
        try:
            parts = await asyncio.gather(
                *(self._embed_role(model, by_role[role], role, counter) for role in roles)
            )
        finally:  # what the provider reported is billed, even when a later batch failed
            usage = Usage(input_tokens=sum(counter))
            reservation.settle(self._prices.cost(model.model, usage, ProviderKind.OPENAI))
            self._metrics.spend.labels(migration.name).set(cap.spent)
        embedded = _Embedded(tokens=sum(counter))
        for role, matrix in zip(roles, parts, strict=True):
            for string, row in zip(by_role[role], matrix, strict=True):
                embedded.vectors[(string, role)] = row
            if matrix.shape[0]:
                embedded.width = int(matrix.shape[1])
        return embedded

    async def _embed_role(
        self, model: EmbeddingModel, texts: list[str], role: Role, counter: list[int]
    ) -> Matrix:
        _TOKENS.set(counter)  # this task's context: the fetches it starts copy it
        return (await self.embeddings.embed(model, texts, role)).vectors

    # -- the reference set -----------------------------------------------------------------

    async def _reference(
        self,
        call: CapturedCall,
        migration: MigrationSettings,
        arm: ArmSettings,
        texts: Sequence[CapturedText],
        candidate: _Embedded,
        cap: SpendCap,
    ) -> tuple[ReferenceText, ...]:
        settings = migration.embeddings
        assert settings is not None and call.request is not None
        stratum = self._stratum(migration, arm, segment_key(call.segment), settings.max_strata)
        entrants: dict[tuple[str, Role], CapturedText] = {}
        for text in texts:
            sample = self._set(migration, arm, stratum, text.role, settings.reference_size)
            if sample.admits(text.key):
                # Kept at once, before its vectors are fetched: the pairs in flight meanwhile
                # are judged against it, instead of all seeing the set as it was (a wave of
                # max_in_flight calls would all be admitted), and none sends it too.
                sample.add(text.key)
                entrants[(text.key, text.role)] = text
        if not entrants:
            return ()
        sent: tuple[ReferenceText, ...] = ()
        try:
            sent = await self._send(call, migration, arm, stratum, entrants, candidate, cap)
        finally:  # what did not go may go with a later call
            gone = {(r.text_hash, r.role) for r in sent}
            for key, role in entrants:
                if (key, role.value) not in gone:
                    self._set(migration, arm, stratum, role, settings.reference_size).discard(key)
        return sent

    async def _send(
        self,
        call: CapturedCall,
        migration: MigrationSettings,
        arm: ArmSettings,
        stratum: str,
        entrants: dict[tuple[str, Role], CapturedText],
        candidate: _Embedded,
        cap: SpendCap,
    ) -> tuple[ReferenceText, ...]:
        """The entrants with the primary's vectors, smallest keys first, within the size
        budget."""
        settings = migration.embeddings
        assert settings is not None and call.request is not None
        model = call.request.get("model")
        if not isinstance(model, str):
            self._left_out(migration, arm, "no primary model", len(entrants))
            return ()
        primary = _primary_model(call, model, settings.primary)
        try:
            found = await self._embed(primary, list(entrants.values()), cap, migration)
        except _Skip as skip:
            self._left_out(migration, arm, skip.reason, len(entrants))
            return ()
        except EmbeddingError as exc:
            log.warning("%s/%s: the primary's reference vectors failed: %s", migration.name,
                        arm.name, exc)  # fmt: skip
            self._left_out(migration, arm, "primary failed", len(entrants))
            return ()
        candidate_model = _model(arm.provider, arm.model, arm.embedding or EmbeddingSideSettings())
        budget = self.max_reference_bytes
        sent: list[ReferenceText] = []
        for (key, role), text in sorted(entrants.items()):  # smallest keys first
            reference = ReferenceText(
                text_hash=key,
                text=text.text,
                role=role.value,
                segment_key=stratum,
                primary_model=primary.model,
                primary_version=primary.version_label,
                candidate_model=candidate_model.model,
                candidate_version=candidate_model.version_label,
                primary_vector=encode_vector(found.vectors[(text.text, role)].tolist()),
                candidate_vector=encode_vector(candidate.vectors[(text.text, role)].tolist()),
                retention_days=settings.retention_days,
            )
            if budget is not None:
                size = len(reference.model_dump_json()) + 1
                if size > budget:
                    self._left_out(migration, arm, "message size", len(entrants) - len(sent))
                    break
                budget -= size
            sent.append(reference)
        if sent:
            self._metrics.reference_texts.labels(migration.name, arm.name).inc(len(sent))
        return tuple(sent)

    def _stratum(self, migration: MigrationSettings, arm: ArmSettings, key: str, limit: int) -> str:
        """`key`, or `OTHER_STRATUM` once `limit` other segment keys have their own."""
        known = self._strata.setdefault((migration.name, arm.name), set())
        if key in known:
            return key
        if len(known) < limit:
            known.add(key)
            return key
        if (migration.name, arm.name) not in self._strata_full:
            self._strata_full.add((migration.name, arm.name))
            log.warning(
                "migration %s arm %s: more than %d segment keys; the reference set samples"
                " later ones together as %r (migrations[].embeddings.max_strata)",
                migration.name,
                arm.name,
                limit,
                OTHER_STRATUM,
            )
        return OTHER_STRATUM

    def _set(
        self, migration: MigrationSettings, arm: ArmSettings, stratum: str, role: Role, k: int
    ) -> BottomK:
        found = self._sets.get((migration.name, arm.name, stratum, role))
        if found is None:
            found = self._sets[(migration.name, arm.name, stratum, role)] = BottomK(k)
        return found

    def _left_out(self, migration: MigrationSettings, arm: ArmSettings, why: str, n: int) -> None:
        reason = why.split(":")[0].split(" (")[0]
        self._metrics.reference_left_out.labels(migration.name, arm.name, reason).inc(n)

    def _skip(self, arm: ArmSettings, reason: str) -> ArmResult:
        self._metrics.skipped.labels(reason.split(":")[0].split(" (")[0]).inc()
        return ArmResult(
            provider=arm.provider,
            model=arm.model,
            latency_ms=0.0,
            error=ErrorInfo(kind=ErrorKind.SKIPPED, message=reason),
        )

    async def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            await asyncio.to_thread(self._cache.prune)


class _Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _model(provider: str, model: str, side: EmbeddingSideSettings) -> EmbeddingModel:
    return EmbeddingModel(
        provider=provider,
        model=model,
        version=side.version or "",
        dimensions=side.dimensions,
        normalize=side.normalize,
        query_prefix=side.query_prefix,
        document_prefix=side.document_prefix,
        query_input_type=side.query_input_type or "",
        document_input_type=side.document_input_type or "",
    )


def _primary_model(call: CapturedCall, model: str, side: EmbeddingSideSettings) -> EmbeddingModel:
    """The primary as the app calls it: the side's settings; `dimensions` and `input_type`
    from the captured request when the side does not set them (the app asked for that width,
    that input type)."""
    assert call.request is not None
    asked = call.request.get("dimensions")
    if side.dimensions is None and isinstance(asked, int) and not isinstance(asked, bool):
        side = side.model_copy(update={"dimensions": asked if asked > 0 else None})
    typed = call.request.get("input_type")
    if (
        side.query_input_type is None
        and side.document_input_type is None
        and isinstance(typed, str)
        and typed
    ):
        side = side.model_copy(update={"query_input_type": typed, "document_input_type": typed})
    return _model(call.primary.provider, model, side)


def _failed(arm: ArmSettings, exc: EmbeddingError, latency_ms: float) -> ArmResult:
    """An arm whose embedding request failed: the error as any arm's (HTTP with its status
    when the provider answered one, 200 when the answer was not the vectors asked for, else
    unreachable)."""
    status: int | None = exc.status if isinstance(exc, EmbeddingRefused) else None
    if isinstance(exc, EmbeddingAnswerError):
        status = 200
    if status is None and (found := _HTTP_STATUS.search(str(exc))) is not None:
        status = int(found[1])
    kind = ErrorKind.HTTP if status is not None else ErrorKind.UNREACHABLE
    return ArmResult(
        provider=arm.provider,
        model=arm.model,
        status_code=status,
        latency_ms=latency_ms,
        error=ErrorInfo(kind=kind, message=str(exc)[:1000]),
    )


__all__ = [
    "OTHER_STRATUM",
    "BottomK",
    "CapturedText",
    "EmbeddingArms",
    "captured_texts",
    "segment_key",
    "text_key",
]
