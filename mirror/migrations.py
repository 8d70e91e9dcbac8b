"""Migrations: which captured calls the runner replays, to which arms, within which limits,
and which arm serves live traffic in a staged rollout.

Shared contract (not the runner's room): the sidecar matches calls against the same settings
to serve a rollout's share of them from the candidate arm.

    migrations:
      - name: support-to-claude
        match: {api: [openai.chat_completions], model: ["gpt-4o*"], segment: {route: support}}
        sampling: {rate: 0.2, sticky: segment.user}
        noise_rate: 0.05          # of the sampled calls, also replayed to the primary unchanged
        daily_spend_usd: 50
        arms:
          - name: sonnet
            provider: anthropic
            model: claude-sonnet-4-6
            system_prompt: {mode: append, text: "Answer in at most three sentences."}
            params: {max_tokens: 1024}
        rollout:                  # optional: serve a share of the live calls from an arm
          arm: sonnet             # default: the only arm (required with several)
          sticky: segment.user    # segment.<label> | header:<name> | body:<dotted.path>
          weight: 0.0             # served at start, until a change is recorded
          steps: [0.05, 0.25, 0.5, 1.0]
          hold: 10m

An embedding migration (`embeddings` set) matches `openai.embeddings` calls; each arm calls
its candidate embedding model (its `embedding` side: prefixes, dimensions, normalisation,
version label) through the runner's embedding cache, and a bottom-k reference set of texts
with both models' vectors goes to the judge's store (`mirror.runner.embedding_arm`):

    migrations:
      - name: e5
        match: {api: [openai.embeddings], model: [text-embedding-3-small]}
        embeddings:
          primary: {dimensions: 512}          # how the app calls its model
          reference_size: 5000                # texts kept, stratified by (segment, role)
          role: auto                          # auto | query | document | segment.<label>
          retention_days: 30                  # the reference rows' TTL
          thresholds: [0.75]                  # cut-offs the report recalibrates
        arms:
          - name: e5-small
            provider: local
            model: multilingual-e5-small
            embedding: {query_prefix: "query: ", document_prefix: "passage: "}

An arm whose provider speaks another dialect than the captured call gets the request
translated (Chat Completions ⇄ Messages) or skipped with the reason. Model patterns are shell
globs. Settings refuse, at start, what could not work: an arm on an unknown provider, two arms
or migrations with one name, a spend cap on a model without a price, a parameter the runner
owns (`model`, `messages`...), a rollout arm the migration does not have, a rollout of an
embedding migration (its candidate's vectors would answer queries against the primary's index).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mirror.config import CREDENTIAL_HEADERS, Section, parse_duration
from mirror.events import Api, ArmKind, CapturedCall, ProviderKind

#: Keys an arm's `params` may not set: the runner (or the sidecar, serving a call) and
#: `system_prompt` own them. Here, not in `mirror.translate`, because the settings are shared
#: contract and may not import a room.
RESERVED_PARAMS = frozenset({"model", "messages", "input", "system", "instructions"})

#: The noise arm's name: the primary model asked again, the floor every candidate is read
#: against.
NOISE_ARM = "noise"


class SystemPrompt(Section):
    text: str
    mode: Literal["replace", "prepend", "append"] = "replace"


class EmbeddingSideSettings(Section):
    """How one side of an embedding migration calls its model (`mirror.embeddings.EmbeddingModel`
    without the provider and model, which the arm, or the captured call, names)."""

    #: Put before a query text (e5: "query: ").
    query_prefix: str = ""
    #: Put before a document text (e5: "passage: ").
    document_prefix: str = ""
    #: Sent as the request's `input_type` for query texts (a model that takes the role as a
    #: field, e.g. "query"); None: no `input_type` (on the primary side: the captured
    #: request's own, when it has one).
    query_input_type: str | None = Field(default=None, min_length=1)
    #: Sent as the request's `input_type` for document texts (e.g. "document", "passage").
    document_input_type: str | None = Field(default=None, min_length=1)
    #: OpenAI's `dimensions`; None: the model's own width.
    dimensions: int | None = Field(default=None, gt=0)
    normalize: bool = True
    #: A label (a dated snapshot, a fine-tune's tag); default the model's name. Change it and
    #: every vector is new to the cache.
    version: str | None = Field(default=None, min_length=1)


_ROLE = re.compile(r"^(?:auto|query|document|segment\.[A-Za-z0-9_-]+)$")


class EmbeddingMigrationSettings(Section):
    """What makes a migration an embedding migration (see the module docstring)."""

    #: How the app calls the primary; its prefixes are stripped from captured texts before
    #: they are keyed, and the primary's reference vectors are fetched with these settings.
    primary: EmbeddingSideSettings = Field(default_factory=EmbeddingSideSettings)
    #: Texts in the reference set the report reads (allocated equally across strata).
    reference_size: int = Field(default=5000, gt=0)
    #: auto | query | document | segment.<label>: how a captured text's role is decided.
    role: str = "auto"
    #: The reference rows' TTL (and the readers' window), in days.
    retention_days: int = Field(default=30, gt=0)
    #: Similarity cut-offs the team uses; the report recalibrates them for the candidate.
    thresholds: tuple[float, ...] = ()
    #: Segment keys a runner keeps a reference sample of, per arm; calls of later keys share
    #: one stratum, `(other segments)`, so a label with a value per user cannot grow the
    #: runner's memory without bound (at most `reference_size` keys per stratum and role).
    max_strata: int = Field(default=100, gt=0)

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if not _ROLE.match(value):
            raise ValueError(f"must be auto, query, document or segment.<label>, got {value!r}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for threshold in value:
            if not -1.0 <= threshold <= 1.0:
                raise ValueError(f"{threshold!r} is not a similarity in [-1, 1]")
        return value


class ArmSettings(Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    provider: str
    model: str
    system_prompt: SystemPrompt | None = None
    #: Top-level request parameters set (or removed, with null) on the candidate's request.
    params: dict[str, Any] = Field(default_factory=dict)
    #: OpenAI temperature/top_p going to an Anthropic arm: leave them out and record it on the
    #: pair (approximate), refuse the call unless they are at their default, drop them, or keep
    #: them (for an older Anthropic API version); see `mirror.translate.request`.
    sampling: Literal["approximate", "refuse", "drop", "keep"] = "approximate"
    #: max_tokens for an Anthropic arm when the OpenAI request set none.
    default_max_tokens: int = Field(default=4096, gt=0)
    #: The candidate's side of an embedding migration (the migration's `embeddings` set);
    #: None there: the model called with no prefix, its own width, normalised.
    embedding: EmbeddingSideSettings | None = None

    @field_validator("name")
    @classmethod
    def _not_noise(cls, value: str) -> str:
        if value == NOISE_ARM:
            raise ValueError(f"{NOISE_ARM!r} is the noise arm's name; set noise_rate instead")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = sorted(RESERVED_PARAMS & value.keys())
        if owned:
            raise ValueError(f"{', '.join(owned)}: set by the runner or system_prompt")
        return value


class MatchSettings(Section):
    """All given conditions must hold; an empty list or mapping matches anything."""

    api: tuple[Api, ...] = ()
    #: Globs over the model the app asked for (the request's `model`).
    model: tuple[str, ...] = ()
    #: Segment label -> accepted values.
    segment: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("segment", mode="before")
    @classmethod
    def _values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    def matches(self, call: CapturedCall) -> bool:
        model = call.request.get("model") if call.request else None
        return self.matches_parts(call.api, model, call.segment)

    def matches_parts(self, api: Api, model: Any, segment: Mapping[str, str]) -> bool:
        """The same rules over the parts of a call: the runner has a `CapturedCall`, the
        sidecar (serving a rollout) the request as it arrives."""
        if self.api and api not in self.api:
            return False
        if self.model:
            if not isinstance(model, str) or not any(fnmatchcase(model, p) for p in self.model):
                return False
        return all(segment.get(label) in values for label, values in self.segment.items())


class SamplingSettings(Section):
    rate: float = Field(default=1.0, ge=0, le=1)
    #: `segment.<label>`: sample by that label's value (a user, a session) so one user's calls
    #: are all in or all out; default: each call on its own.
    sticky: str | None = Field(default=None, pattern=r"^segment\.[A-Za-z0-9_-]+$")


StickySource = Literal["segment", "header", "body"]
_STICKY = re.compile(
    r"^(?:segment\.(?P<segment>[A-Za-z0-9_-]+)"
    r"|header:(?P<header>[A-Za-z0-9!#$%&'*+.^_`|~-]+)"
    r"|body:(?P<body>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*))$"
)


class RolloutSettings(Section):
    """A staged rollout: the share of the live calls the migration matches that `arm` serves
    in place of the primary (the sidecar answers them from the candidate, translated back to
    the app's API; the runner still judges them against a shadow call to the primary).

    The weight in force is the latest recorded change (`mirror.rollout.WeightChange`: a
    person, a trigger's rollback, the step schedule); `weight` is the share before any.
    """

    #: The arm that serves. Default: the migration's only arm (required when it has several).
    arm: str | None = None
    #: What keeps one caller on one side while the weight stands: `segment.<label>` (a segment
    #: label's value), `header:<name>` (a request header's value), `body:<dotted.path>` (a
    #: string or number in the JSON request body). None: each call is decided on its own, as
    #: is a call whose key is missing or empty.
    sticky: str | None = None
    #: The share (0..1) served at start, while no change has been recorded.
    weight: float = Field(default=0.0, ge=0, le=1)
    #: The step schedule: increasing shares in (0, 1].
    steps: tuple[float, ...] = ()
    #: How long each step must hold (with every trigger clear) before the next.
    hold: timedelta = timedelta(minutes=10)

    @field_validator("sticky")
    @classmethod
    def _sticky(cls, value: str | None) -> str | None:
        if value is None:
            return None
        found = _STICKY.match(value)
        if found is None:
            raise ValueError(
                f"must be segment.<label>, header:<name> or body:<dotted.path>, got {value!r}"
            )
        if found["header"] is not None:
            header = found["header"].lower()
            if header in CREDENTIAL_HEADERS:
                raise ValueError(f"{header!r} carries credentials; stick by another header")
            return f"header:{header}"
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for i, step in enumerate(value):
            if not 0.0 < step <= 1.0:
                raise ValueError(f"{step!r} is not a share in (0, 1]")
            if i and step <= value[i - 1]:
                raise ValueError(
                    f"{step!r} does not increase on the step before it, {value[i - 1]!r}"
                )
        return value

    @field_validator("hold", mode="before")
    @classmethod
    def _hold(cls, value: object) -> timedelta:
        hold = parse_duration(value)
        if hold <= timedelta(0):
            raise ValueError(f"must be a positive duration, got {value!r}")
        return hold

    @property
    def sticky_source(self) -> tuple[StickySource, str] | None:
        """(`segment` | `header` | `body`, the label, header name or dotted path), or None."""
        if self.sticky is None:
            return None
        if self.sticky.startswith("segment."):
            return "segment", self.sticky.removeprefix("segment.")
        source, _, name = self.sticky.partition(":")
        return ("header" if source == "header" else "body"), name


class MigrationSettings(Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    enabled: bool = True
    match: MatchSettings = Field(default_factory=MatchSettings)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    noise_rate: float = Field(default=0.0, ge=0, le=1)
    daily_spend_usd: float | None = Field(default=None, gt=0)
    arms: tuple[ArmSettings, ...] = ()
    #: Staged rollout; None: the migration only shadows.
    rollout: RolloutSettings | None = None
    #: Present: an embedding migration (its arms call embedding models, see the module).
    embeddings: EmbeddingMigrationSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _rollout_arm(cls, data: Any) -> Any:
        """`rollout.arm` defaults to the only arm: filled in here, so readers of the settings
        (the sidecar, the step schedule, the pages) find it set."""
        if not isinstance(data, dict):
            return data
        rollout, arms = data.get("rollout"), data.get("arms")
        if not isinstance(arms, list | tuple) or len(arms) != 1:
            return data
        only = arms[0].get("name") if isinstance(arms[0], dict) else getattr(arms[0], "name", None)
        if isinstance(rollout, dict) and rollout.get("arm") is None:
            return {**data, "rollout": {**rollout, "arm": only}}
        if isinstance(rollout, RolloutSettings) and rollout.arm is None:
            return {**data, "rollout": rollout.model_copy(update={"arm": only})}
        return data

    @model_validator(mode="after")
    def _arms(self) -> MigrationSettings:
        names = [arm.name for arm in self.arms]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"arms: duplicate arm name {duplicated[0]!r}")
        if not self.arms and self.noise_rate == 0:
            raise ValueError("arms: a migration needs at least one arm (or a noise_rate)")
        rollout = self.rollout
        if rollout is not None:
            listed = ", ".join(names)
            if not names:
                raise ValueError("rollout.arm: the migration has no arm to serve from")
            if rollout.arm is None:
                raise ValueError(f"rollout.arm: required with several arms (arms: {listed})")
            if rollout.arm not in names:
                raise ValueError(f"rollout.arm: no arm named {rollout.arm!r} (arms: {listed})")
        if self.embeddings is None:
            for i, arm in enumerate(self.arms):
                if arm.embedding is not None:
                    raise ValueError(
                        f"arms[{i}].embedding: only an embedding migration's arm has one"
                        " (set the migration's embeddings)"
                    )
        else:
            if any(api is not Api.OPENAI_EMBEDDINGS for api in self.match.api):
                raise ValueError(
                    "match.api: an embedding migration replays openai.embeddings calls only"
                )
            if self.rollout is not None:
                # The app's index holds the primary's vectors: a candidate's vector answers a
                # query in another space. Switching is a re-index, not a traffic share.
                raise ValueError(
                    "rollout: an embedding migration only shadows (the candidate's vectors live"
                    " in another space than the app's index; re-embed, then switch)"
                )
        return self

    def arm(self, name: str) -> ArmSettings | None:
        return next((arm for arm in self.arms if arm.name == name), None)


class LimitSettings(Section):
    """Per-provider limits on the runner's own calls."""

    concurrency: int | None = Field(default=32, gt=0)
    requests_per_s: float | None = Field(default=None, gt=0)
    tokens_per_min: float | None = Field(default=None, gt=0)


class RunnerSettings(Section):
    group: str = "shadowjudge-runner"
    #: Captured calls being worked on at once (each may fan out to several arms).
    max_in_flight: int = Field(default=256, gt=0)
    timeout_s: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=4, gt=0)
    #: On SIGTERM, how long the calls in flight may take to finish and publish. Past it they
    #: are abandoned uncommitted: whoever owns their partitions next replays them.
    drain_timeout_s: float = Field(default=30.0, gt=0)
    #: Limits per provider name; providers not listed get the defaults.
    limits: dict[str, LimitSettings] = Field(default_factory=dict)
    metrics_listen: str | None = "127.0.0.1:8702"
    #: The embedding arms' vector cache (SQLite, created owner-only; see
    #: `mirror.embeddings.cache` for why vectors stay in it).
    embedding_cache: Path = Path("var/embeddings/cache.sqlite3")
    #: Cached vectors older than this are deleted (when the runner starts, then daily).
    embedding_cache_max_age_days: float = Field(default=30.0, gt=0)


def target_api(source: Api, kind: ProviderKind) -> Api:
    """The API an arm on a provider of `kind` is called with for a call captured on `source`."""
    if source.provider_kind is kind:
        return source
    return Api.ANTHROPIC_MESSAGES if kind is ProviderKind.ANTHROPIC else Api.OPENAI_CHAT


def arm_kind(name: str) -> ArmKind:
    return ArmKind.NOISE if name == NOISE_ARM else ArmKind.CANDIDATE
