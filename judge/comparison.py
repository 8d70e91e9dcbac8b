"""The judge's output: one `Comparison` per (call, migration, arm, judge version).

This is the contract between the scorers (which fill it), the store (which writes it to the
`comparisons` table, one column per field) and the dashboards (which read the aggregates).
Every verdict says which tier decided it and why; an error is never an `equivalent`.

`Comparison` is a `typing.NamedTuple`, not a frozen dataclass: the judge builds one a pair,
10,000 a second per process (issue 17), and a frozen dataclass's `__init__` sets its 46 fields
one `object.__setattr__` at a time (~6 µs a row), where a tuple is made in one step. It stays
immutable, keeps its field names and defaults, and is the store's row as it is (fields in
column order). Being a tuple, it equals a plain tuple of the same values and iterates over its
values: nothing reads it as a collection, and rows are compared with rows only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class Verdict(StrEnum):
    EQUIVALENT = "equivalent"
    CANDIDATE_BETTER = "candidate_better"
    CANDIDATE_WORSE = "candidate_worse"
    DIFFERENT = "different"
    #: The judge could not decide (its call failed or timed out); counted as neither.
    ERROR = "error"
    #: Nothing to compare: a side has no answer (error, skip, truncation).
    NOT_JUDGED = "not_judged"


class Tier(StrEnum):
    """The cascade tier that decided semantic equivalence, cheapest first."""

    EXACT = "exact"  # normalised text (and tool calls) equal
    JSON = "json"  # structurally equal JSON
    LLM = "llm"  # the pairwise LLM judge, asked in both orders
    NONE = "none"  # not judged


class RefusalTier(StrEnum):
    """Which tier decided a side's refusal verdict."""

    RULES = "rules"  # the rule-based detector (judge.scorers.refusal), or the API's own flag
    LLM = "llm"  # the LLM judge, for an answer whose rules score was uncertain


class RefusalFinding(StrEnum):
    NONE = "none"
    CANDIDATE_ONLY = "candidate_only"  # the candidate refused where the primary answered
    PRIMARY_ONLY = "primary_only"
    BOTH = "both"


class Comparison(NamedTuple):
    # identity
    call_id: str
    migration: str
    arm: str
    arm_kind: str  # "candidate" | "noise"
    judge_version: str
    captured_at: datetime
    judged_at: datetime
    api: str
    segment: dict[str, str]
    # the two sides
    primary_provider: str
    primary_model: str
    candidate_provider: str
    candidate_model: str
    stream: bool
    primary_status: int  # 0: no HTTP answer
    candidate_status: int
    primary_error: str  # "" or the ErrorKind value
    candidate_error: str
    candidate_error_message: str
    # semantic equivalence
    verdict: Verdict
    tier: Tier
    verdict_reason: str
    #: Whether the LLM judge gave the same verdict in both orders (None: LLM not asked).
    judge_orders_agree: bool | None
    judge_cached: bool
    # refusals
    refusal_primary: bool
    refusal_candidate: bool
    refusal_primary_score: float
    refusal_candidate_score: float
    refusal_finding: RefusalFinding
    refusal_evidence: str  # the candidate's deciding sentence, or the primary's
    # format drift
    format_drift: bool
    format_findings: tuple[str, ...]
    length_ratio: float | None  # candidate length / primary length
    # latency, tokens, cost
    primary_latency_ms: float
    candidate_latency_ms: float
    primary_ttft_ms: float | None
    candidate_ttft_ms: float | None
    primary_input_tokens: int | None
    primary_output_tokens: int | None
    candidate_input_tokens: int | None
    candidate_output_tokens: int | None
    primary_cost_usd: float | None
    candidate_cost_usd: float | None
    # which tier decided each side's refusal (last, with defaults: added by migration 7)
    refusal_primary_tier: RefusalTier = RefusalTier.RULES
    refusal_candidate_tier: RefusalTier = RefusalTier.RULES
    #: What the translation of the candidate's request changed (`ArmResult.approximations`);
    #: empty when faithful (last, with a default: added by migration 8).
    candidate_approximations: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.call_id, self.migration, self.arm, self.judge_version)
