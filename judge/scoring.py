"""The scorer: one `ShadowPair` in, one `Comparison` row out.

`Scorer.score` fills every field of `judge.comparison.Comparison`: refusals per side and the
disagreement finding, format drift, semantic equivalence (through `EquivalenceCascade`),
latency and time to first token, tokens and cost per side, statuses and errors. Everything but
the LLM tier is synchronous and cheap (~20 µs a pair on structured traffic, ~40 on the demo
mix: the judge worker's budget is 10,000 pairs/s per process, parsing and the ClickHouse
writes included; `docs/benchmarks.md`, issue 17), so `score_many` runs the
deterministic work inline and only the pairs that need the LLM judge wait, concurrently.

Judge version
-------------
`Scorer.version` names everything that can change a row, so the store keeps one row per
(`call_id`, migration, arm, judge version) and a replay under the same version is a no-op::

    v2|openai/gpt-4.1|refusal-rules-2|format-2|cascade-2|len=0.5-2

rubric version | judge provider/model (``none`` without a judge) | refusal `DETECTOR_VERSION` |
`FORMAT_DRIFT_VERSION` | `CASCADE_VERSION` | length-ratio bounds. Changing any of them changes
the version; the verdict cache is keyed by it too.

Refusals
--------
A side refused when OpenAI's explicit `refusal` field is set, when it finished with
`content_filter` (OpenAI's filter, Anthropic's `refusal` stop reason), or when
`judge.scorers.refusal.detect_refusal` says so from its text and the user's last message (the
request lets it see an answer to another, harmless reading of it). The finding
(`candidate_only`, `primary_only`, `both`, `none`) needs an answer on both sides: a failed
call did not refuse, and it did not comply either, so a pair with an error on either side has
finding `none` (the per-side flags stay, for per-side rates).

A side whose rules score lies in `judge.refusal_tier.band` is re-decided by the LLM judge when
one is configured (`judge.scorers.refusal_tier`), concurrently with the equivalence judge; the
row says which tier decided each side (`refusal_primary_tier`, `refusal_candidate_tier`), and
the tier's prompt version and band join the refusal part of the judge version
(``refusal-rules-2+refusal-llm-1@0.2-0.8``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import NamedTuple

from judge.comparison import Comparison, RefusalFinding, RefusalTier
from judge.config import JudgeSettings
from judge.scorers.equivalence import (
    CASCADE_VERSION,
    Equivalence,
    EquivalenceCascade,
    PairwiseJudge,
    unusable_reason,
)
from judge.scorers.format_drift import FORMAT_DRIFT_VERSION, NO_DRIFT, FormatDrift, format_drift
from judge.scorers.pairwise import extract_user
from judge.scorers.refusal import (
    DETECTOR_VERSION,
    RefusalKind,
    RefusalVerdict,
    detect_refusal,
)
from judge.scorers.refusal import NOT_REFUSED as _NOT_REFUSED_VERDICT
from judge.scorers.refusal_memo import RefusalMemo
from judge.scorers.refusal_tier import PROMPT_VERSION, LlmRefusalTier, tier_text
from mirror.config import ProviderSettings
from mirror.events import Api, ArmResult, FinishReason, ShadowPair
from mirror.pricing import PriceTable

_EVIDENCE_CHARS = 160
# Enum members bound once: read from their class they cost ~0.1 µs each on Python 3.11.
_NO_FINDING = RefusalFinding.NONE
_CONTENT_FILTER = FinishReason.CONTENT_FILTER
#: `Api.provider_kind` by API, read from a dict rather than through the property.
_PROVIDER_KINDS = {api: api.provider_kind for api in Api}
#: Primary-side refusal verdicts remembered by call_id: every arm of a call (candidates and the
#: noise arm) shares the primary's answer, so the detector runs on it once, not once per arm.
_PRIMARY_MEMO = 4096


def judge_version(settings: JudgeSettings, judge: PairwiseJudge | None) -> str:
    """The version string of rows scored with these settings and this judge."""
    rubric = judge.rubric_version if judge is not None else settings.rubric_version
    llm = judge.identity if judge is not None else "none"
    low, high = settings.length_ratio_bounds
    refusal = DETECTOR_VERSION
    if judge is not None and settings.refusal_tier.enabled:  # the LLM tier of refusals is on
        band_low, band_high = settings.refusal_tier.band
        refusal += f"+{PROMPT_VERSION}@{band_low:g}-{band_high:g}"
    return "|".join(
        (
            rubric,
            llm,
            refusal,
            FORMAT_DRIFT_VERSION,
            CASCADE_VERSION,
            f"len={low:g}-{high:g}",
        )
    )


class SideRefusal(NamedTuple):
    refused: bool
    score: float
    evidence: str
    tier: RefusalTier = RefusalTier.RULES


NOT_REFUSED = SideRefusal(refused=False, score=0.0, evidence="")


def side_refusal(
    result: ArmResult,
    request: str | None = None,
    detect: Callable[[str, str | None], RefusalVerdict] = detect_refusal,
) -> SideRefusal:
    """Whether one side's answer is a refusal, and the words that show it.

    `request` is the user's last message, which lets the detector see an answer to another
    reading of it; None when the captured request was not kept. `detect` is the detector
    (the scorer's remembers verdicts by text: `judge.scorers.refusal_memo`)."""
    output = result.output
    if output is None or output.embeddings is not None:
        return NOT_REFUSED
    if output.refusal:
        return SideRefusal(True, 1.0, output.refusal[:_EVIDENCE_CHARS])
    if output.finish_reason is _CONTENT_FILTER:
        return SideRefusal(True, 1.0, f"finish reason {output.raw_finish_reason or 'filter'}")
    if not output.text:
        return NOT_REFUSED
    verdict = detect(output.text, request)
    if verdict is _NOT_REFUSED_VERDICT:  # most answers: the same row as below, made once
        return NOT_REFUSED
    evidence = (verdict.evidence or "") if verdict.refused else ""
    return SideRefusal(verdict.refused, verdict.score, evidence)


def refusal_finding(primary: SideRefusal, candidate: SideRefusal) -> RefusalFinding:
    if primary.refused:
        return RefusalFinding.BOTH if candidate.refused else RefusalFinding.PRIMARY_ONLY
    return RefusalFinding.CANDIDATE_ONLY if candidate.refused else RefusalFinding.NONE


class _Prepared(NamedTuple):
    """The deterministic part of a pair's score; `equivalence` is None until the LLM decides."""

    pair: ShadowPair
    primary: SideRefusal
    candidate: SideRefusal
    finding: RefusalFinding
    drift: FormatDrift
    equivalence: Equivalence | None
    #: The user's last message, for the refusal tier (None when the request was not kept).
    request: str | None = None


class Scorer:
    """Scores shadow pairs; an async context manager that closes the judge it was given.

    `providers` tells the candidate's provider kind (for pricing; an arm may be translated to
    another dialect than the captured call's). `judge` None turns the LLM tier off.
    """

    def __init__(
        self,
        settings: JudgeSettings,
        providers: Mapping[str, ProviderSettings],
        prices: PriceTable,
        judge: PairwiseJudge | None,
    ) -> None:
        self.settings = settings
        self.judge = judge
        self.version = judge_version(settings, judge)
        self.cascade = EquivalenceCascade(
            judge, version=self.version, cache_size=settings.cache_size
        )
        self._kinds = {name: provider.kind for name, provider in providers.items()}
        self._prices = prices
        self._bounds = settings.length_ratio_bounds
        #: oldest first: `popitem(last=False)` is O(1), where a dict's first key is found past
        #: the slots its earlier deletions left (~1.5 µs a pair at 4,096 entries)
        self._primary_refusals: OrderedDict[str, SideRefusal] = OrderedDict()
        self._refusals = RefusalMemo()
        self.refusal_tier = LlmRefusalTier(
            judge, settings.refusal_tier, cache_size=settings.cache_size
        )

    async def score(self, pair: ShadowPair) -> Comparison:
        return (await self.score_many([pair]))[0]

    async def score_many(self, pairs: Sequence[ShadowPair]) -> list[Comparison]:
        """Score a batch: deterministic tiers inline, LLM calls (equivalence, and the refusal
        tier for uncertain answers) concurrently; order kept."""
        prepared = [self._prepare(pair) for pair in pairs]
        waiting = [i for i, p in enumerate(prepared) if p.equivalence is None]
        deciding = asyncio.gather(
            *(self.cascade.decide_llm(pairs[i].call, pairs[i].result) for i in waiting)
        )
        if self.refusal_tier.active:
            prepared, decided = await asyncio.gather(self._refusal_tier(prepared), deciding)
        else:
            decided = await deciding
        verdicts = [p.equivalence for p in prepared]
        for i, equivalence in zip(waiting, decided, strict=True):
            verdicts[i] = equivalence
        rows: list[Comparison] = []
        judged_at = datetime.now(UTC)  # the batch's rows are built together, now
        for p, e in zip(prepared, verdicts, strict=True):
            assert e is not None
            rows.append(self._build(p, e, judged_at))
        return rows

    def _prepare(self, pair: ShadowPair) -> _Prepared:
        call, result = pair.call, pair.result
        primary_result = call.primary
        request = extract_user(call.api, call.request)
        primary = self._primary_refusal(pair, request)
        candidate = side_refusal(result, request, self._refusals.detect)
        if (
            unusable_reason(primary_result, "primary") is None
            and unusable_reason(result, "candidate") is None
        ):
            primary_out, candidate_out = primary_result.output, result.output
            assert primary_out is not None and candidate_out is not None
            drift = format_drift(primary_out, candidate_out, length_bounds=self._bounds)
            # the cascade's tiers, its own usability check just passed here
            equivalence = self.cascade.decide_usable(primary_out, candidate_out)
            finding = refusal_finding(primary, candidate)  # usable answers are `_answered`
        else:
            drift = NO_DRIFT
            equivalence = self.cascade.decide_cheap(call, result)  # says which side, and why
            finding = _NO_FINDING
            if _answered(primary_result) and _answered(result):
                finding = refusal_finding(primary, candidate)
        return _Prepared(pair, primary, candidate, finding, drift, equivalence, request)

    async def _refusal_tier(self, prepared: list[_Prepared]) -> list[_Prepared]:
        """The pairs with a side whose rules score is uncertain, re-decided by the LLM tier."""
        tier = self.refusal_tier
        if not tier.active:
            return prepared
        waiting = [
            i
            for i, p in enumerate(prepared)
            if tier.wants(p.primary.score) or tier.wants(p.candidate.score)
        ]
        settled = await asyncio.gather(*(self._settle(prepared[i]) for i in waiting))
        prepared = list(prepared)
        for i, p in zip(waiting, settled, strict=True):
            prepared[i] = p
        return prepared

    async def _settle(self, prepared: _Prepared) -> _Prepared:
        call, result = prepared.pair.call, prepared.pair.result
        request = prepared.request or ""
        primary, candidate = await asyncio.gather(
            self._tiered(request, call.primary, prepared.primary),
            self._tiered(request, result, prepared.candidate),
        )
        finding = RefusalFinding.NONE
        if _answered(call.primary) and _answered(result):
            finding = refusal_finding(primary, candidate)
        return prepared._replace(primary=primary, candidate=candidate, finding=finding)

    async def _tiered(self, request: str, result: ArmResult, side: SideRefusal) -> SideRefusal:
        text = tier_text(result)
        if text is None or not self.refusal_tier.wants(side.score):
            return side
        kind = RefusalKind.FULL if side.refused else RefusalKind.NONE
        rules = RefusalVerdict(side.refused, kind, side.score, side.evidence or None)
        decided = await self.refusal_tier.decide(request, text, rules)
        if decided.tier is RefusalTier.RULES:
            return side
        verdict = decided.verdict
        evidence = (verdict.evidence or "") if verdict.refused else ""
        return SideRefusal(verdict.refused, verdict.score, evidence, RefusalTier.LLM)

    def _primary_refusal(self, pair: ShadowPair, request: str | None) -> SideRefusal:
        memo = self._primary_refusals
        found = memo.get(pair.call.call_id)
        if found is None:
            found = side_refusal(pair.call.primary, request, self._refusals.detect)
            memo[pair.call.call_id] = found
            if len(memo) > _PRIMARY_MEMO:
                memo.popitem(last=False)  # the oldest
        return found

    def _build(
        self, prepared: _Prepared, equivalence: Equivalence, judged_at: datetime
    ) -> Comparison:
        pair = prepared.pair
        call, primary, candidate = pair.call, pair.call.primary, pair.result
        primary_kind = _PROVIDER_KINDS[call.api]
        candidate_kind = self._kinds.get(candidate.provider, primary_kind)
        p_usage, c_usage = primary.usage, candidate.usage
        refused = prepared.candidate if prepared.candidate.refused else prepared.primary
        # Positional, in field order (each line names its field): a NamedTuple's keyword
        # call matches 46 names, ~4 µs a row; mypy checks each value's type against its field.
        # `_value_`: an enum's `value` is a property, a Python call per read.
        return Comparison(
            call.call_id,  # call_id
            pair.migration,  # migration
            pair.arm.name,  # arm
            pair.arm.kind._value_,  # arm_kind
            self.version,  # judge_version
            call.captured_at,  # captured_at
            judged_at,  # judged_at
            call.api._value_,  # api
            dict(call.segment),  # segment
            primary.provider,  # primary_provider
            primary.model or "",  # primary_model
            candidate.provider,  # candidate_provider
            candidate.model or "",  # candidate_model
            primary.stream,  # stream
            primary.status_code or 0,  # primary_status
            candidate.status_code or 0,  # candidate_status
            primary.error.kind._value_ if primary.error else "",  # primary_error
            candidate.error.kind._value_ if candidate.error else "",  # candidate_error
            candidate.error.message if candidate.error else "",  # candidate_error_message
            equivalence.verdict,  # verdict
            equivalence.tier,  # tier
            equivalence.reason,  # verdict_reason
            equivalence.orders_agree,  # judge_orders_agree
            equivalence.cached,  # judge_cached
            prepared.primary.refused,  # refusal_primary
            prepared.candidate.refused,  # refusal_candidate
            prepared.primary.score,  # refusal_primary_score
            prepared.candidate.score,  # refusal_candidate_score
            prepared.finding,  # refusal_finding
            refused.evidence,  # refusal_evidence
            prepared.drift.drift,  # format_drift
            prepared.drift.findings,  # format_findings
            prepared.drift.length_ratio,  # length_ratio
            primary.latency_ms,  # primary_latency_ms
            candidate.latency_ms,  # candidate_latency_ms
            primary.ttft_ms,  # primary_ttft_ms
            candidate.ttft_ms,  # candidate_ttft_ms
            p_usage.input_tokens if p_usage else None,  # primary_input_tokens
            p_usage.output_tokens if p_usage else None,  # primary_output_tokens
            c_usage.input_tokens if c_usage else None,  # candidate_input_tokens
            c_usage.output_tokens if c_usage else None,  # candidate_output_tokens
            self._prices.cost(primary.model, p_usage, primary_kind),  # primary_cost_usd
            self._prices.cost(candidate.model, c_usage, candidate_kind),  # candidate_cost_usd
            prepared.primary.tier,  # refusal_primary_tier
            prepared.candidate.tier,  # refusal_candidate_tier
            candidate.approximations,  # candidate_approximations
        )

    async def aclose(self) -> None:
        if self.judge is not None:
            await self.judge.aclose()

    async def __aenter__(self) -> Scorer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _answered(result: ArmResult) -> bool:
    """An answer came back (possibly cut at the capture cap): refusal can be told from it."""
    return result.ok and result.output is not None and result.output.embeddings is None
