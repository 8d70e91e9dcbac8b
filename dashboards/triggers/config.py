"""The `triggers:` section: rollback rules written before a migration starts, and alert sinks.

    triggers:
      interval_s: 60                  # how often the rules are evaluated
      sinks:
        - {name: oncall, kind: alertmanager, url_env: ALERTMANAGER_URL}
        - {name: team, kind: slack, url_env: SLACK_WEBHOOK_URL, repeat_interval: 4h}
      rules:
        - name: refusals-up           # candidate refuses more than the primary by > 0.5 points
          metric: refusal_difference
          margin: 0.005
        - name: slow-tail             # p99 latency above the primary's by more than 30%
          metric: latency_ratio
          margin: 0.30
        - name: equivalence-low       # semantic equivalence below 90%
          metric: equivalence_rate
          threshold: 0.90
          for: 10m
          rollback: true

Metrics and what "bad" means (every rule fires only when its whole confidence interval is on
the bad side, clears when it is wholly on the good side, and holds otherwise):

- `equivalence_rate`: below `threshold` (baseline `primary`), or below the noise arm's by more
  than `margin` points (baseline `noise`);
- `worse_rate`, `format_drift_rate`: above `threshold`, or above the noise arm's by `margin`;
- `error_rate`: the candidate's errors (HTTP, timeouts, broken streams; a skipped arm is
  not counted, it is our setup) above the primary's (or the noise arm's) by `margin` points,
  or above `threshold` when one is set;
- `refusal_difference`: the candidate refusing more often than the primary on the same calls,
  by more than `margin` points (paired);
- `latency_ratio`, `ttft_ratio`: the candidate's `quantile` (0.99 and 0.5 by default) above
  the baseline's by more than `margin` (0.30 = 30%);
- `cost_ratio`: the candidate's cost per call above the baseline's by more than `margin`. Cost
  is measured, not sampled noise: this is a budget rule, decided on the window's figures
  once `min_pairs` are in, without an interval.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mirror.config import Section, parse_duration


class Metric(StrEnum):
    EQUIVALENCE_RATE = "equivalence_rate"
    WORSE_RATE = "worse_rate"
    FORMAT_DRIFT_RATE = "format_drift_rate"
    ERROR_RATE = "error_rate"
    REFUSAL_DIFFERENCE = "refusal_difference"
    LATENCY_RATIO = "latency_ratio"
    TTFT_RATIO = "ttft_ratio"
    COST_RATIO = "cost_ratio"


RATES = (Metric.EQUIVALENCE_RATE, Metric.WORSE_RATE, Metric.FORMAT_DRIFT_RATE, Metric.ERROR_RATE)
RATIOS = (Metric.LATENCY_RATIO, Metric.TTFT_RATIO, Metric.COST_RATIO)


class RuleSettings(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    metric: Metric
    #: Migrations and candidate arms it watches (`*`: all); the noise arm is never judged.
    migrations: tuple[str, ...] = ("*",)
    arms: tuple[str, ...] = ("*",)
    baseline: Literal["primary", "noise"] = "primary"
    #: An absolute level (rates against the primary): e.g. 0.90 for "equivalence below 90%".
    threshold: float | None = Field(default=None, ge=0, le=1)
    #: Points for rates and differences (0.005 = 0.5 points), a fraction for ratios (0.3 = 30%).
    margin: float = Field(default=0.0, ge=0)
    quantile: float | None = Field(default=None, gt=0, lt=1)
    min_pairs: int = Field(default=200, ge=1)
    window: str = "24h"
    #: `*` (all traffic), a label (`tenant`: each of its values) or one value (`tenant=acme`).
    segments: tuple[str, ...] = ("*",)
    for_: timedelta = Field(default=timedelta(0), alias="for")
    keep_firing_for: timedelta = timedelta(0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    #: On firing, set the arm's rollout weight to 0.
    rollback: bool = False
    #: Sink names (default: every sink).
    alerts: tuple[str, ...] | None = None

    @field_validator("for_", "keep_firing_for", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value != "all" and not re.match(r"^\d{1,4}[hd]$", value):
            raise ValueError(f"expected <n>h, <n>d or all, got {value!r}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> RuleSettings:
        absolute = self.metric in (
            Metric.EQUIVALENCE_RATE,
            Metric.WORSE_RATE,
            Metric.FORMAT_DRIFT_RATE,
        )
        if absolute and self.baseline == "primary" and self.threshold is None:
            raise ValueError(
                f"threshold: {self.metric.value} against the primary needs a level (e.g. 0.90)"
            )
        if self.metric is Metric.REFUSAL_DIFFERENCE and self.baseline != "primary":
            raise ValueError("baseline: refusal_difference is paired with the primary")
        if self.quantile is not None and self.metric not in (
            Metric.LATENCY_RATIO,
            Metric.TTFT_RATIO,
        ):
            raise ValueError("quantile: only for latency_ratio and ttft_ratio")
        return self

    @property
    def level(self) -> float:
        """The quantile a latency rule compares."""
        if self.quantile is not None:
            return self.quantile
        return 0.5 if self.metric is Metric.TTFT_RATIO else 0.99


class SinkSettings(Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: Literal["alertmanager", "slack", "json"]
    #: Name of the environment variable holding the URL (a webhook URL is a secret).
    url_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: A firing alert is sent again at most this often.
    repeat_interval: timedelta = timedelta(hours=4)

    @field_validator("repeat_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)


class TriggerSettings(Section):
    #: Evaluate the rules in this process. With a ClickHouse server and several `dashboards`
    #: or `run` processes, leave it true on exactly one (see docs/triggers.md).
    evaluate: bool = True
    interval_s: float = Field(default=60.0, gt=0)
    rules: tuple[RuleSettings, ...] = ()
    sinks: tuple[SinkSettings, ...] = ()

    @model_validator(mode="after")
    def _names(self) -> TriggerSettings:
        sinks = [s.name for s in self.sinks]
        rules = [r.name for r in self.rules]
        for kind, names in (("sinks", sinks), ("rules", rules)):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ValueError(f"{kind}: duplicate name {duplicated[0]!r}")
        for i, rule in enumerate(self.rules):
            for name in rule.alerts or ():
                if name not in sinks:
                    raise ValueError(f"rules[{i}].alerts: no sink named {name!r}")
        return self
