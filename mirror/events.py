"""The event contract between mirror, runner and judge (DESIGN.md, "Contracts").

Every message on the bus is one of these pydantic models serialised as JSON. The judge imports
this module; nothing here imports judge or dashboards. `schema_version` is bumped on any change
a reader of an older version could misread; readers refuse versions they do not know (and any
field they do not know) with a `SerializationError`, so such a message goes to the DLQ with
its reason instead of being half-understood. A field added as optional and left out of the
JSON while unset (`Truncation.bus`, `CapturedCall.served_by`, `ArmResult.approximations`,
`ShadowPair.reference`) needs
no new version: events without it parse everywhere, and an older reader refuses one that
carries it (an unknown field) rather than misreading it.

Normalisation lives here because this is where the data first appears: the same vocabulary for
finish reasons and errors lets the judge compare an OpenAI arm with an Anthropic arm.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mirror.errors import SerializationError

SCHEMA_VERSION: Literal[1] = 1

#: Header the runner puts on its own requests; the sidecar and the in-process transport never
#: capture a call that carries it, so shadow traffic is never mirrored again.
SHADOW_TRAFFIC_HEADER = "x-shadowjudge-shadow"

#: Request headers whose name starts with this prefix label the call's segment
#: (`x-shadow-tenant: acme` gives `segment["tenant"] = "acme"`). They are ours: the sidecar
#: strips them before forwarding, so the provider never sees them.
SEGMENT_HEADER_PREFIX = "x-shadow-"
#: Segment labels the judge gives every pair itself (`translation=faithful|approximate`, see
#: `judge.store.schema`): a call's own label of such a name is dropped at capture (and refused
#: in the configuration), so the figures of that segment are the judge's only.
RESERVED_SEGMENT_LABELS = frozenset({"translation"})


class Api(StrEnum):
    """The provider APIs the mirror understands."""

    OPENAI_CHAT = "openai.chat_completions"
    OPENAI_RESPONSES = "openai.responses"
    OPENAI_EMBEDDINGS = "openai.embeddings"
    ANTHROPIC_MESSAGES = "anthropic.messages"

    @property
    def provider_kind(self) -> ProviderKind:
        return ProviderKind.ANTHROPIC if self is Api.ANTHROPIC_MESSAGES else ProviderKind.OPENAI


class ProviderKind(StrEnum):
    """The wire dialect a provider speaks."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class FinishReason(StrEnum):
    """Finish reasons mapped to one vocabulary across providers.

    OpenAI `stop`/`length`/`tool_calls`/`content_filter`, Responses `completed`/`incomplete`,
    Anthropic `end_turn`/`max_tokens`/`tool_use`/`stop_sequence`/`refusal`/`pause_turn`.
    The provider's own word is kept beside it in `Output.raw_finish_reason`.
    """

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"
    OTHER = "other"


class ErrorKind(StrEnum):
    """Why an arm produced no (complete) answer."""

    HTTP = "http"  # the provider answered with a non-2xx status
    STREAM = "stream"  # an error event inside a 200 stream (Anthropic `event: error`)
    UNREACHABLE = "unreachable"  # no connection to the provider
    TIMEOUT = "timeout"
    CLIENT_DISCONNECT = "client_disconnect"  # the app went away before the answer ended
    INCOMPLETE = "incomplete"  # the stream ended without its terminal event
    SKIPPED = "skipped"  # the runner did not call the arm (cap, untranslatable, ...)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(_Model):
    kind: ErrorKind
    message: str
    #: The provider's own error type, e.g. `rate_limit_error`, `overloaded_error`.
    type: str | None = None


class ToolCall(_Model):
    id: str | None = None
    name: str
    #: The arguments exactly as the model produced them (a JSON string, possibly invalid).
    arguments: str = ""


class Usage(_Model):
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: Input tokens served from the provider's prompt cache (OpenAI `cached_tokens`,
    #: Anthropic `cache_read_input_tokens`).
    cached_tokens: int | None = None
    #: Anthropic `cache_creation_input_tokens`; priced differently from plain input.
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


class EmbeddingSummary(_Model):
    """Embeddings are summarised, not stored: vectors from different models do not compare."""

    count: int
    dimensions: int | None = None
    encoding: Literal["float", "base64"] = "float"


class Output(_Model):
    """A provider answer normalised across APIs."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    #: The text parsed as JSON when it is JSON (bare or inside one markdown fence).
    parsed_json: Any = None
    #: OpenAI's explicit `refusal` field, or Anthropic's `refusal` stop reason message.
    refusal: str | None = None
    embeddings: EmbeddingSummary | None = None


class ArmResult(_Model):
    """One model's answer to one request: the primary's, a candidate's or the noise arm's."""

    provider: str
    model: str | None = None
    status_code: int | None = None
    error: ErrorInfo | None = None
    stream: bool = False
    latency_ms: float
    #: Time from sending the request to the first content-bearing stream event.
    ttft_ms: float | None = None
    output: Output | None = None
    usage: Usage | None = None
    #: The response body passed the capture cap; `output` holds what fitted.
    truncated: bool = False
    #: What the runner's translation of the request changed on the way to this arm, one note
    #: each (`mirror.translate.replay`: "json_object as forced tool use", "top_p not sent"...);
    #: empty for a faithful request. Written only when not empty, so readers from before the
    #: field parse every pair of a faithful translation.
    approximations: tuple[str, ...] = Field(default=(), exclude_if=lambda notes: not notes)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and self.status_code < 300


class Truncation(_Model):
    request: bool = False
    response: bool = False
    #: Some body of the event (the request, an answer) was cut so the event fits the bus's
    #: message limit (`mirror.fit`). Written only when true, so readers from before the field
    #: existed still parse every event that was not cut.
    bus: bool = Field(default=False, exclude_if=lambda cut: not cut)


def new_call_id() -> str:
    """A time-ordered unique id (UUIDv7): sorts by capture time, spreads across partitions."""
    return str(uuid_utils.uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServedBy(_Model):
    """The candidate arm that answered the app in place of the primary (a staged rollout).

    `answer` is the candidate's answer as the candidate sent it, in its own API, before the
    sidecar translated it back to the app's, normalised as the runner normalises every arm's
    answer: so a served answer and a replayed one of the same arm compare like with like, and
    the translation (faithful or not done at all) changes nothing the judge reads. The runner
    moves it into the pair's `result`; in a pair's call it is None.
    """

    migration: str
    arm: str
    provider: str
    model: str
    answer: ArmResult | None = None


class CapturedCall(_Model):
    """One call as the app made it, after redaction.

    `primary` is the primary's answer. A call a candidate served (`served_by` set) was not
    asked of the primary: `primary` then says so (a SKIPPED error naming the arm, with the
    provider that would have answered), and the runner asks the primary in the shadow before
    pairing.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    call_id: str = Field(default_factory=new_call_id)
    captured_at: datetime = Field(default_factory=utc_now)
    api: Api
    #: Labels such as route, tenant, task (from `x-shadow-*` headers and extractors).
    segment: dict[str, str] = Field(default_factory=dict)
    #: The request body as a JSON object, after redaction; None when it was not a JSON object
    #: or passed the cap (then `request_text` holds what fitted, for display only).
    request: dict[str, Any] | None = None
    request_text: str | None = None
    #: Non-secret request headers needed to replay the call (`anthropic-version`, betas).
    request_headers: dict[str, str] = Field(default_factory=dict)
    primary: ArmResult
    truncated: Truncation = Field(default_factory=Truncation)
    #: Set when a candidate arm answered the app (staged rollout); left out of the JSON when
    #: unset, so readers from before the field parse every call that was not served.
    served_by: ServedBy | None = Field(default=None, exclude_if=lambda served: served is None)


class ArmKind(StrEnum):
    CANDIDATE = "candidate"
    NOISE = "noise"


class Arm(_Model):
    name: str
    kind: ArmKind = ArmKind.CANDIDATE


def encode_vector(values: Iterable[float]) -> str:
    """A vector as the bus carries it: base64 of little-endian float32, as the OpenAI API's
    `encoding_format: base64` (exact for float32, about a third of the size of JSON floats:
    384 dimensions take 2,048 characters)."""
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def decode_vector(text: str) -> list[float]:
    """`encode_vector`'s inverse; ValueError when `text` is not whole float32 values."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes are not whole float32 values")
    packed = array("f")
    packed.frombytes(raw)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


class ReferenceText(_Model):
    """One text of an embedding migration's reference set, with both models' vectors.

    Vectors are sensitive (text can be recovered from them): only reference-set members'
    vectors leave the runner, in the pair of the call that carried the text, for the judge to
    store under `retention_days` (`mirror.runner.embedding_arm` says how texts are chosen).
    Vectors are `encode_vector` strings (base64 of little-endian float32).
    """

    #: Hex SHA-256 of `text` (the app's prefix stripped): the bottom-k sampling key.
    text_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    text: str
    role: Literal["query", "document"]
    #: The call's segment labels as sorted `k=v` joined by `,` ("" when none).
    segment_key: str
    primary_model: str
    primary_version: str
    candidate_model: str
    candidate_version: str
    primary_vector: str
    candidate_vector: str
    #: How long the judge's store keeps the row (the migration's `embeddings.retention_days`).
    retention_days: int = Field(default=30, gt=0, lt=65_536)


class ShadowPair(_Model):
    """A captured call and one arm's answer to the same request."""

    schema_version: Literal[1] = SCHEMA_VERSION
    call: CapturedCall
    migration: str
    arm: Arm
    result: ArmResult
    #: An embedding arm's reference-set texts from this call (most pairs: none). Written only
    #: when not empty, so readers from before the field parse every other pair.
    reference: tuple[ReferenceText, ...] = Field(default=(), exclude_if=lambda texts: not texts)

    @property
    def key(self) -> str:
        """The pair's identity on the bus and in the store (with the judge version)."""
        return f"{self.call.call_id}/{self.migration}/{self.arm.name}"


def dump_event(event: CapturedCall | ShadowPair) -> bytes:
    """Serialise an event for the bus."""
    # `model_dump_json` is this serialiser's bytes decoded to a str: the bytes, as they are.
    return event.__pydantic_serializer__.to_json(event)


_PAIR_HEAD = b'{"schema_version":%d,' % SCHEMA_VERSION


def dump_pair(pair: ShadowPair, call_json: bytes | None = None) -> bytes:
    """`pair` serialised with `call_json`, its call's JSON already at hand, spliced in.

    The runner has each call's JSON as it consumed it; serialising the call again for every
    pair took half the pair's serialisation (issue 17). The rest of the pair is serialised as
    `dump_event` does, so the bytes equal `dump_event(pair)` when `call_json` equals
    `dump_event(pair.call)` (the sidecar's), and otherwise (another writer's spacing, key order
    or escapes) parse to an equal pair. `call_json` must be a JSON object that parses to
    `pair.call`; None serialises the call.
    """
    if call_json is None:
        return dump_event(pair)
    rest = pair.__pydantic_serializer__.to_json(pair, exclude={"call"})
    if not rest.startswith(_PAIR_HEAD):  # not the field order this splice knows
        return dump_event(pair)
    return b"".join((_PAIR_HEAD, b'"call":', call_json, b",", rest[len(_PAIR_HEAD) :]))


def parse_captured_call(raw: bytes) -> CapturedCall:
    """Parse a `shadow.calls` message; raises `SerializationError` with the reason."""
    try:
        return CapturedCall.model_validate_json(raw)
    except ValidationError as exc:
        raise SerializationError(f"not a CapturedCall: {_first_error(exc)}") from exc


def parse_shadow_pair(raw: bytes) -> ShadowPair:
    """Parse a `shadow.pairs` message; raises `SerializationError` with the reason."""
    try:
        return ShadowPair.model_validate_json(raw)
    except ValidationError as exc:
        raise SerializationError(f"not a ShadowPair: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "<root>"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"
