"""The mirror's sections of `shadowjudge.yaml`: providers, sidecar, capture and bus.

Each package owns the settings of what it runs; `dashboards.settings.Settings` composes them into
the one model the CLI builds at start. Models forbid unknown keys, so a typo is an error that
names the key rather than a setting silently ignored. Secrets never appear in the file: a
provider names the environment variable that holds its key.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mirror.events import RESERVED_SEGMENT_LABELS, ProviderKind


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """`90s`, `10m`, `4h`, `1d`, `250ms` (or seconds as a number); ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    found = _DURATION.match(str(value).strip())
    if not found:
        raise ValueError(f"expected a duration like 90s, 10m, 4h or 1d, got {value!r}")
    return timedelta(seconds=float(found[1]) * _UNITS[found[2]])


def parse_host_port(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{key} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class ProviderSettings(Section):
    """An LLM provider endpoint.

    `base_url` is the origin the API paths (`/v1/...`) are appended to, e.g.
    `https://api.openai.com` or `https://api.anthropic.com`.
    """

    kind: ProviderKind
    base_url: str
    api_key_env: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    def api_key(self) -> str | None:
        """The key from the environment; read when needed, never stored in settings."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


def default_providers() -> dict[str, ProviderSettings]:
    return {
        "openai": ProviderSettings(
            kind=ProviderKind.OPENAI,
            base_url="https://api.openai.com",
            api_key_env="OPENAI_API_KEY",
        ),
        "anthropic": ProviderSettings(
            kind=ProviderKind.ANTHROPIC,
            base_url="https://api.anthropic.com",
            api_key_env="ANTHROPIC_API_KEY",
        ),
    }


class SidecarSettings(Section):
    listen: str = "127.0.0.1:8700"
    #: Which provider serves an OpenAI-dialect and an Anthropic-dialect request when the path
    #: does not name one (`/<provider>/v1/...` names one). Default: the provider of that kind
    #: named like the kind, else the first of that kind.
    upstream: dict[ProviderKind, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    #: No read timeout by default: the app's own client decides how long it waits, and when it
    #: gives up the sidecar closes the upstream request.
    read_timeout_s: float | None = Field(default=None, gt=0)
    #: Upstream connections in use at once (all providers); past it, calls wait their turn.
    max_connections: int = Field(default=1000, gt=0)
    #: How long an idle upstream connection is kept for reuse; keep it below the provider's
    #: own idle timeout, or a request may meet a connection the provider is closing.
    upstream_keepalive_s: float = Field(default=15.0, gt=0)
    #: Staged rollout: how long a candidate arm may take to produce the first byte of its
    #: answer (connection and headers included) before the call is served by the primary
    #: instead. Counted as a fallback with reason `timeout`.
    rollout_first_byte_timeout_s: float = Field(default=30.0, gt=0)
    #: The request line and headers together, in bytes: past it the sidecar answers 414 (while
    #: the target is read) or 431 and closes, forwarding nothing.
    max_head_bytes: int = Field(default=64 * 1024, ge=4096)
    #: Header fields in one request: past it, 431.
    max_header_fields: int = Field(default=100, gt=0)
    #: The request body: a Content-Length above it, or a chunked body that passes it, is
    #: answered 413 before anything reaches the provider. Capture keeps its own, smaller cap
    #: (`capture.max_body_bytes`): a body between the two is forwarded whole, its capture cut.
    max_body_bytes: int = Field(default=32 << 20, gt=0)
    #: From a request's first byte to the end of its headers: past it, 408 and a close.
    head_timeout_s: float = Field(default=30.0, gt=0)
    #: The longest pause while a request body arrives: past it, 408 and a close. Between
    #: requests only the keep-alive timer (75 s) runs.
    body_idle_timeout_s: float = Field(default=30.0, gt=0)
    #: The CPU time slice the sidecar's process asks the kernel for, in µs (Linux 6.12 and
    #: later; `mirror.sidecar.sched`): shorter than the default (about 1-3 ms), so that when the
    #: sidecar wakes for a piece of an answer it preempts CPU-bound work on that core (the judge
    #: inside `run`) instead of waiting for that work's slice to end. 0: the kernel's default.
    cpu_slice_us: int = Field(default=100, ge=0, le=100_000)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_host_port(value, "listen")
        return value


class RedactionRule(Section):
    name: str
    pattern: str
    replacement: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @property
    def replacement_text(self) -> str:
        return self.replacement if self.replacement is not None else f"[REDACTED:{self.name}]"


class CaptureSettings(Section):
    enabled: bool = True
    #: Request and response bodies past this many bytes are cut in the capture (never on the
    #: live path) and the event is flagged as truncated.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    #: The publisher queue: past either bound a new event is dropped and counted.
    queue_max_events: int = Field(default=10_000, gt=0)
    queue_max_bytes: int = Field(default=256 << 20, gt=0)
    #: How long after a call ended its capture is built and sent: the app reads its answer
    #: first, without the capture's work competing for the CPU (`mirror.sidecar.publisher`).
    publish_delay_ms: float = Field(default=3.0, ge=0, le=1000)
    redact: tuple[RedactionRule, ...] = ()
    #: Segment labels read from request headers: label -> header name.
    segment_headers: dict[str, str] = Field(default_factory=dict)
    #: Segment labels read from the request body: label -> dotted path (`metadata.user_id`).
    segment_body: dict[str, str] = Field(default_factory=dict)
    #: Non-secret request headers kept in the event so the runner can replay the call.
    replay_headers: tuple[str, ...] = ("anthropic-version", "anthropic-beta", "openai-beta")
    #: Names of environment variables whose values are redacted wherever they appear.
    secret_envs: tuple[str, ...] = ()

    @field_validator("replay_headers")
    @classmethod
    def _no_credentials(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(h.lower() for h in value)
        for header in lowered:
            if header in CREDENTIAL_HEADERS:
                raise ValueError(f"{header!r} carries credentials and cannot be kept")
        return lowered

    @field_validator("segment_headers", "segment_body")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        for label in sorted(RESERVED_SEGMENT_LABELS & value.keys()):
            raise ValueError(f"{label}: a segment label the judge gives every pair itself")
        return value

    @field_validator("segment_headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for label, header in value.items():
            if header.lower() in CREDENTIAL_HEADERS:
                raise ValueError(f"{label}: {header!r} carries credentials")
        return {label: header.lower() for label, header in value.items()}


#: Headers that carry credentials: never copied into an event, a log or a page.
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
    }
)


class TopicSettings(Section):
    calls: str = "shadow.calls"
    pairs: str = "shadow.pairs"
    dlq: str = "shadow.dlq"
    #: Rollout weight changes (`mirror.rollout.WeightChange`), keyed by migration: one
    #: partition, compacted, read from the start by every sidecar.
    control: str = "shadow.control"


class KafkaProducerSettings(Section):
    acks: Literal["all", 1, 0] = "all"
    compression: Literal["zstd", "gzip", "lz4", "snappy", "none"] = "zstd"
    #: Captures are not latency-sensitive: waiting up to 50 ms fills batches, so one produce
    #: request (one syscall, one compression) carries many events instead of one.
    linger_ms: int = Field(default=50, ge=0)
    #: Off by default: the test broker (Tansu) does not implement InitProducerId.
    idempotence: bool = False
    max_batch_bytes: int = Field(default=1 << 20, gt=0)
    request_timeout_ms: int = Field(default=30_000, gt=0)


class KafkaConsumerSettings(Section):
    #: Where a consumer goes when its position is not in the log: a new group, offsets past
    #: retention, or a log replaced under it (a broker that came back empty, a topic re-created).
    #: `earliest` by default: shadow traffic is worth replaying. Offsets skipped are logged and
    #: counted either way.
    offset_reset: Literal["earliest", "latest"] = "earliest"
    #: How long the group waits for a silent member before giving its partitions to others.
    #: Lower: a crashed runner's partitions move sooner; too low: a long GC pause or a busy
    #: loop costs a rebalance.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    #: Static membership (KIP-345): a stable id per process (e.g. the pod name). A restarted
    #: member with the same id takes its partitions back at once, without a rebalance; the
    #: trade-off is that a member that is really gone keeps its partitions, unread, until the
    #: session timeout passes. Each process needs its own id; None: dynamic membership.
    instance_id: str | None = None


class BusSettings(Section):
    """`memory://` (one process) or `kafka://host:port[,host:port]`."""

    url: str = "memory://"
    topics: TopicSettings = Field(default_factory=TopicSettings)
    partitions: int = Field(default=6, gt=0)
    replication_factor: int = Field(default=1, gt=0)
    #: The largest message the bus takes: the smaller of the producer's `max_request_size` and
    #: the broker's `message.max.bytes` (the topics are created with `max.message.bytes` set to
    #: it). An event that would pass it is published with its bodies cut to fit and flagged
    #: (`mirror.fit`), never refused. Kafka's default is 1 MiB.
    max_message_bytes: int = Field(default=1 << 20, ge=64 << 10)
    #: How often topics are checked (created when missing, partition count compared with
    #: `partitions`); after a failed check, every `topic_check_s / 10`.
    topic_check_s: float = Field(default=10.0, gt=0)
    producer: KafkaProducerSettings = Field(default_factory=KafkaProducerSettings)
    consumer: KafkaConsumerSettings = Field(default_factory=KafkaConsumerSettings)
    #: Capacity of each in-process topic for `memory://`.
    memory_capacity: int = Field(default=100_000, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "memory":
            return value
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"must be memory:// or kafka://host:port, got {value!r}")
        for hostport in parts.netloc.split(","):
            parse_host_port(hostport, "kafka address")
        return value

    @property
    def is_memory(self) -> bool:
        return self.url.startswith("memory:")

    @property
    def bootstrap_servers(self) -> str:
        return urlsplit(self.url).netloc


Providers = Annotated[dict[str, ProviderSettings], Field(default_factory=default_providers)]
