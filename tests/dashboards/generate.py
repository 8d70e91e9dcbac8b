"""Generated pairs and their comparisons, with every figure the dashboards show in the mix.

One migration (`support`) with a candidate arm (`sonnet`) and the noise arm; three tenants and
three routes; verdicts of every kind, not-judged and error causes with fixes, refusals on
both sides, format drift of several kinds, streams (with TTFT) of which some have no usage.
Seeded: the same arguments give the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from judge.comparison import Comparison, RefusalFinding, Tier, Verdict
from judge.store.store import Store
from mirror.events import (
    Api,
    Arm,
    ArmKind,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    FinishReason,
    Output,
    ShadowPair,
    Usage,
    new_call_id,
)
from tests.chdb import fresh_store

MIGRATION = "support"
START = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
NOT_JUDGED = (
    "no LLM judge configured",
    "candidate skipped: untranslatable: messages[1].content[0]: input_audio has no Anthropic"
    " counterpart",
    "candidate skipped: no API key for provider 'anthropic': environment variable"
    " ANTHROPIC_API_KEY is not set",
)
VERDICT_MIX = (
    (Verdict.EQUIVALENT, 0.62),
    (Verdict.DIFFERENT, 0.12),
    (Verdict.CANDIDATE_WORSE, 0.08),
    (Verdict.CANDIDATE_BETTER, 0.06),
    (Verdict.NOT_JUDGED, 0.09),
    (Verdict.ERROR, 0.03),
)
QUESTIONS = (
    "How do I reset my password?",
    "Extract the order number from: 'Order #48213 arrived damaged'.",
    "Is my invoice for March paid?",
    "Summarise this ticket in one sentence: the VPN drops every hour since Tuesday.",
)


@dataclass(frozen=True)
class Generated:
    pairs: list[ShadowPair]
    comparisons: list[Comparison]


def _draw(rng: random.Random) -> Verdict:
    roll, total = rng.random(), 0.0
    for verdict, share in VERDICT_MIX:
        total += share
        if roll < total:
            return verdict
    return Verdict.EQUIVALENT


def generate(
    n: int, *, seed: int = 5, start: datetime = START, hours: int = 36, noise_share: float = 0.1
) -> Generated:
    rng = random.Random(seed)
    pairs: list[ShadowPair] = []
    comparisons: list[Comparison] = []
    for i in range(n):
        noise = rng.random() < noise_share
        question = rng.choice(QUESTIONS)
        stream = rng.random() < 0.3
        captured = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        p_latency = rng.lognormvariate(6.5, 0.4)
        c_latency = rng.lognormvariate(6.3 if not noise else 6.5, 0.45)
        p_usage = (
            None
            if stream and rng.random() < 0.5
            else Usage(input_tokens=rng.randint(100, 900), output_tokens=rng.randint(20, 300))
        )
        primary_text = f"Answer {i % 17} to: {question}"
        call = CapturedCall(
            call_id=new_call_id(),
            captured_at=captured,
            api=Api.OPENAI_CHAT,
            segment={
                "tenant": rng.choice(["acme", "globex", "initech"]),
                "route": rng.choice(["/chat", "/extract", "/triage"]),
            },
            request={"model": "gpt-4o", "messages": [{"role": "user", "content": question}]},
            primary=ArmResult(
                provider="openai",
                model="gpt-4o",
                status_code=200,
                latency_ms=p_latency,
                ttft_ms=p_latency * 0.3 if stream else None,
                stream=stream,
                output=Output(text=primary_text, finish_reason=FinishReason.STOP),
                usage=p_usage,
            ),
        )
        verdict = Verdict.EQUIVALENT if noise and rng.random() < 0.8 else _draw(rng)
        reason = {
            Verdict.NOT_JUDGED: rng.choice(NOT_JUDGED),
            Verdict.ERROR: "judge timed out after 30 s",
        }.get(verdict, f"judge: {verdict.value}")
        failed = verdict is Verdict.NOT_JUDGED and "skipped" in reason
        candidate_text = (
            primary_text
            if verdict is Verdict.EQUIVALENT
            else (f"Reply {i % 13}: {question.lower()} — see the help centre.")
        )
        c_usage = (
            None
            if failed or (stream and rng.random() < 0.5)
            else Usage(input_tokens=rng.randint(100, 900), output_tokens=rng.randint(20, 300))
        )
        result = ArmResult(
            provider="openai" if noise else "anthropic",
            model="gpt-4o" if noise else "claude-sonnet-4-6",
            status_code=None if failed else 200,
            latency_ms=0.0 if failed else c_latency,
            ttft_ms=c_latency * 0.25 if stream and not failed else None,
            stream=stream,
            error=ErrorInfo(kind=ErrorKind.SKIPPED, message=reason.split(": ", 1)[1])
            if failed
            else None,
            output=None if failed else Output(text=candidate_text, finish_reason=FinishReason.STOP),
            usage=c_usage,
        )
        arm = Arm(name="noise", kind=ArmKind.NOISE) if noise else Arm(name="sonnet")
        pair = ShadowPair(call=call, migration=MIGRATION, arm=arm, result=result)
        refused = (rng.random() < 0.03, not failed and rng.random() < 0.06)
        finding = {
            (False, False): RefusalFinding.NONE,
            (True, False): RefusalFinding.PRIMARY_ONLY,
            (False, True): RefusalFinding.CANDIDATE_ONLY,
            (True, True): RefusalFinding.BOTH,
        }[refused]
        drift = (
            ()
            if failed or rng.random() > 0.1
            else tuple(
                rng.sample(["json_fence", "finish_reason", "key_set", "length"], rng.randint(1, 2))
            )
        )
        judged = verdict not in (Verdict.NOT_JUDGED, Verdict.ERROR)
        tier = (
            Tier.NONE
            if verdict is Verdict.NOT_JUDGED
            else (Tier.EXACT if verdict is Verdict.EQUIVALENT and rng.random() < 0.5 else Tier.LLM)
        )
        comparisons.append(
            Comparison(
                call_id=call.call_id,
                migration=MIGRATION,
                arm=arm.name,
                arm_kind=arm.kind.value,
                judge_version="cascade-1+rubric-2",
                captured_at=captured,
                judged_at=captured + timedelta(seconds=2),
                api=call.api.value,
                segment=dict(call.segment),
                primary_provider="openai",
                primary_model="gpt-4o",
                candidate_provider=result.provider,
                candidate_model=result.model or "",
                stream=stream,
                primary_status=200,
                candidate_status=result.status_code or 0,
                primary_error="",
                candidate_error="skipped" if failed else "",
                candidate_error_message=result.error.message if result.error else "",
                verdict=verdict,
                tier=tier,
                verdict_reason=reason,
                judge_orders_agree=(rng.random() < 0.9) if tier is Tier.LLM and judged else None,
                judge_cached=rng.random() < 0.1,
                refusal_primary=refused[0],
                refusal_candidate=refused[1],
                refusal_primary_score=0.9 if refused[0] else 0.05,
                refusal_candidate_score=0.9 if refused[1] else 0.05,
                refusal_finding=finding,
                refusal_evidence="I can't help with that." if any(refused) else "",
                format_drift=bool(drift),
                format_findings=drift,
                length_ratio=None if failed else len(candidate_text) / len(primary_text),
                primary_latency_ms=p_latency,
                candidate_latency_ms=result.latency_ms,
                primary_ttft_ms=call.primary.ttft_ms,
                candidate_ttft_ms=result.ttft_ms,
                primary_input_tokens=p_usage.input_tokens if p_usage else None,
                primary_output_tokens=p_usage.output_tokens if p_usage else None,
                candidate_input_tokens=c_usage.input_tokens if c_usage else None,
                candidate_output_tokens=c_usage.output_tokens if c_usage else None,
                primary_cost_usd=p_usage.output_tokens * 1e-5 if p_usage else None,
                candidate_cost_usd=c_usage.output_tokens * 1.5e-5 if c_usage else None,
            )
        )
        pairs.append(pair)
    return Generated(pairs, comparisons)


@contextmanager
def stored(chdb_dir: Path, data: Generated) -> Iterator[Store]:
    """A migrated store in a database of its own on the session's chDB directory (one
    directory per process), holding `data`."""
    with fresh_store(chdb_dir, "g") as opened:
        opened.insert_pairs(data.pairs, data.comparisons)
        yield opened
