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

An arm whose provider speaks another dialect than the captured call gets the request
translated (Chat Completions ⇄ Messages) or skipped with the reason. Model patterns are shell
globs. Settings refuse, at start, what could not work: an arm on an unknown provider, two arms
or migrations with one name, a spend cap on a model without a price, a parameter the runner
owns (`model`, `messages`...).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mirror.config import Section
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


class ArmSettings(Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    provider: str
    model: str
    system_prompt: SystemPrompt | None = None
    #: Top-level request parameters set (or removed, with null) on the candidate's request.
    params: dict[str, Any] = Field(default_factory=dict)
    #: OpenAI temperature/top_p going to an Anthropic arm: refuse the call unless they are at
    #: their default, drop them, or keep them (for an older Anthropic API version).
    sampling: Literal["refuse", "drop", "keep"] = "refuse"
    #: max_tokens for an Anthropic arm when the OpenAI request set none.
    default_max_tokens: int = Field(default=4096, gt=0)

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
        if self.api and call.api not in self.api:
            return False
        if self.model:
            model = call.request.get("model") if call.request else None
            if not isinstance(model, str) or not any(fnmatchcase(model, p) for p in self.model):
                return False
        return all(call.segment.get(label) in values for label, values in self.segment.items())


class SamplingSettings(Section):
    rate: float = Field(default=1.0, ge=0, le=1)
    #: `segment.<label>`: sample by that label's value (a user, a session) so one user's calls
    #: are all in or all out; default: each call on its own.
    sticky: str | None = Field(default=None, pattern=r"^segment\.[A-Za-z0-9_-]+$")


class MigrationSettings(Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    enabled: bool = True
    match: MatchSettings = Field(default_factory=MatchSettings)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    noise_rate: float = Field(default=0.0, ge=0, le=1)
    daily_spend_usd: float | None = Field(default=None, gt=0)
    arms: tuple[ArmSettings, ...] = ()

    @model_validator(mode="after")
    def _arms(self) -> MigrationSettings:
        names = [arm.name for arm in self.arms]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"arms: duplicate arm name {duplicated[0]!r}")
        if not self.arms and self.noise_rate == 0:
            raise ValueError("arms: a migration needs at least one arm (or a noise_rate)")
        return self


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


def target_api(source: Api, kind: ProviderKind) -> Api:
    """The API an arm on a provider of `kind` is called with for a call captured on `source`."""
    if source.provider_kind is kind:
        return source
    return Api.ANTHROPIC_MESSAGES if kind is ProviderKind.ANTHROPIC else Api.OPENAI_CHAT


def arm_kind(name: str) -> ArmKind:
    return ArmKind.NOISE if name == NOISE_ARM else ArmKind.CANDIDATE
