"""The judge's sections of `shadowjudge.yaml`: the store and the judge (scoring) itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.scorers.rubrics import DEFAULT_RUBRIC, RUBRICS


class StoreSettings(BaseModel):
    """`chdb:///path/to/dir` (embedded ClickHouse) or `http(s)://user:pass@host:8123/db`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "chdb:///./var/shadowjudge"
    #: Pairs a judge writes as one block per table (ClickHouse's advice: 10,000-100,000 rows an
    #: insert). Each insert costs the engine a fixed part (a new part per table, the journal,
    #: the merges to come): at 5,000 it bounded the judge (issue 17). Scored 5,000 at a time
    #: (`judge.worker.SCORE_ROWS`); `batch_seconds` cuts a batch that fills slower.
    batch_rows: int = Field(default=20_000, gt=0)
    batch_seconds: float = Field(default=1.0, gt=0)
    body_ttl_days: int = Field(default=30, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("chdb", "http", "https"):
            raise ValueError(f"must be chdb:///dir or an http(s) ClickHouse URL, got {scheme!r}")
        return value


class RefusalTierSettings(BaseModel):
    """`judge.refusal_tier`: when the LLM judge re-decides the refusal detector's verdict.

    An answer whose rules score lies in `band` (inclusive at both ends) is classified by the
    LLM judge (full compliance, full refusal, partial refusal), when `judge.provider` is set
    and `enabled` is true. See `judge.scorers.refusal_tier`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: [low, high] of the rules score that counts as uncertain; the detector's threshold is 0.5.
    band: tuple[float, float] = (0.2, 0.8)

    @field_validator("band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high < 1:
            raise ValueError(
                f"must be [low, high] with 0 < low <= high < 1 (rules scores), got {list(value)}"
            )
        return value


class JudgeSettings(BaseModel):
    """The `judge:` section: how pairs are scored.

    `provider` names an entry of `providers:`; the LLM judge is called through it with `model`.
    With `provider` unset the LLM tier is off: pairs the exact and JSON tiers cannot decide get
    `Verdict.NOT_JUDGED` with the reason "no LLM judge configured" — not `different`, which
    would be a claim about the answers that nobody made. (That the named provider exists is
    checked where both sections are known, in the composed settings and in
    `PairwiseJudge.from_settings`.)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str | None = None
    model: str = ""
    #: The consumer group of `shadow.pairs`; judges in one group share the partitions.
    group: str = "shadowjudge-judge"
    #: Prometheus metrics of a judge running alone (`run` serves them on the sidecar).
    metrics_listen: str | None = "127.0.0.1:8703"
    rubric_version: str = DEFAULT_RUBRIC
    #: Per request to the judge; the SDK's own retries each get this much.
    timeout_s: float = Field(default=60.0, gt=0)
    #: Judge requests in flight at once (each pair asks twice, both orders).
    max_concurrency: int = Field(default=16, gt=0)
    #: Retries of a failed judge request by the SDK (429, 5xx, timeouts), with its backoff.
    max_retries: int = Field(default=2, ge=0)
    #: Verdicts kept in the in-memory LRU cache; 0 disables it.
    cache_size: int = Field(default=100_000, ge=0)
    #: Candidate/primary answer length outside these bounds is a format-drift finding.
    length_ratio_bounds: tuple[float, float] = (0.5, 2.0)
    #: The LLM tier of refusal detection, for answers the rules are unsure of.
    refusal_tier: RefusalTierSettings = RefusalTierSettings()

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a provider name from `providers:`, or null to disable")
        return value

    @field_validator("rubric_version")
    @classmethod
    def _rubric(cls, value: str) -> str:
        if value not in RUBRICS:
            known = ", ".join(sorted(RUBRICS))
            raise ValueError(f"unknown rubric {value!r}; known: {known}")
        return value

    @field_validator("length_ratio_bounds")
    @classmethod
    def _bounds(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= 1 <= high:
            raise ValueError(f"must be [low, high] with 0 < low <= 1 <= high, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _model_with_provider(self) -> JudgeSettings:
        if self.provider is not None and not self.model.strip():
            raise ValueError(f"model: required when provider is set (provider {self.provider!r})")
        return self
