"""Semantic equivalence: a cascade of tiers, cheapest first, and a record of which one decided.

1. **exact** — the texts are equal after normalisation (Unicode NFKC, case folding, runs of
   whitespace collapsed, trailing punctuation dropped) and the tool calls are equal (same names,
   in any order, with structurally equal arguments).
2. **json** — both answers are JSON (`Output.parsed_json`) and structurally equal (key order
   irrelevant, numbers compared as numbers), with equal tool calls.
3. **llm** — the pairwise LLM judge (`judge.scorers.pairwise.PairwiseJudge`), asked in both orders.
   Both say "same" → `equivalent`; both prefer the candidate → `candidate_better`; both
   prefer the primary → `candidate_worse`; both say "different" → `different` (orders agree);
   anything else — notably a judge that prefers whichever answer it reads first — is
   `different` with `orders_agree=False`: a verdict that flips with the order is no verdict
   for either side. A judge failure (HTTP error, timeout, an answer not in the rubric's
   format) is `error` with the reason, never `equivalent`.

Before any tier: when either side has no usable answer (an error, a skipped arm, a capture
truncated at the cap, an embeddings call) the pair is `not_judged` with tier `none` and the
reason. Without an LLM judge configured, pairs the cheap tiers cannot decide are `not_judged`
with the reason "no LLM judge configured" — not `different`, which would be a claim nobody made.

LLM verdicts are cached in memory (`VerdictCache`, an LRU bounded by `judge.cache_size`) by the
content hash of what the judge is shown (system prompt, question and both answers) *and the
judge version*, so changing the rubric, the judge model, or any scorer version never serves an
old verdict. Identical pairs in flight at once share one judge call. Errors are not cached.

Bump `CASCADE_VERSION` on any change to the tiers, the normalisation or the combination rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar

from judge.comparison import Tier, Verdict
from judge.scorers.format_drift import json_equal, tool_calls_equal
from judge.scorers.pairwise import (
    JudgeCallError,
    OrderLabel,
    OrderVerdict,
    PairwiseJudge,
    Question,
    extract_question,
    render_answer,
)
from mirror.events import ArmResult, CapturedCall, ErrorKind, Output

__all__ = [
    "CASCADE_VERSION",
    "NO_JUDGE_REASON",
    "Equivalence",
    "EquivalenceCascade",
    "PairwiseJudge",
    "VerdictCache",
    "combine_orders",
    "exact_match",
    "json_match",
    "normalise_text",
    "unusable_reason",
]

#: Part of the judge version.
CASCADE_VERSION = "cascade-2"
NO_JUDGE_REASON = "no LLM judge configured"
_TRAILING = " .,;:!?…。！？、"


@dataclass(frozen=True, slots=True)
class Equivalence:
    """The cascade's outcome for one pair."""

    verdict: Verdict
    tier: Tier
    reason: str
    #: Whether the LLM judge said the same in both orders; None when it was not asked.
    orders_agree: bool | None = None
    #: The verdict came from the cache (or from an identical pair's call in flight).
    cached: bool = False


def not_judged(reason: str) -> Equivalence:
    return Equivalence(Verdict.NOT_JUDGED, Tier.NONE, reason)


# The cheap tiers' outcomes, made once (immutable): a pair's costs no construction.
_EXACT = Equivalence(Verdict.EQUIVALENT, Tier.EXACT, "normalised answers are equal")
_JSON = Equivalence(Verdict.EQUIVALENT, Tier.JSON, "JSON answers are equal")
_TOOLS = Equivalence(
    Verdict.EQUIVALENT, Tier.EXACT, "the same tool calls; the text beside them is only a preamble"
)
_NO_JUDGE = not_judged(NO_JUDGE_REASON)


def unusable_reason(result: ArmResult, side: str, *, bus_cut: bool = False) -> str | None:
    """Why one side's answer cannot be compared, or None when it can. `bus_cut`: the pair was
    cut to fit the bus's message limit (`CapturedCall.truncated.bus`), which then says why an
    answer is truncated."""
    error = result.error
    if error is not None:
        if error.kind is ErrorKind.SKIPPED:
            return f"{side} skipped: {error.message[:200]}"
        return f"{side} failed ({error.kind.value}): {error.message[:200]}"
    if not result.ok:
        return f"{side} has no answer (status {result.status_code})"
    if result.truncated:
        if bus_cut:
            return f"{side} answer truncated to fit the bus message limit (or the capture cap)"
        return f"{side} answer truncated by the capture size cap"
    if result.output is None:
        return f"{side} has no output"
    if result.output.embeddings is not None:
        return "embeddings are not judged"
    return None


def normalise_text(text: str) -> str:
    """Text as the exact tier compares it: NFKC, case-folded, whitespace collapsed, no
    trailing punctuation ("Paris." and "paris" are the same answer)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split()).rstrip(_TRAILING)


def _spoken(output: Output) -> str:
    return f"{output.text}\n{output.refusal}" if output.refusal else output.text


def exact_match(primary: Output, candidate: Output) -> bool:
    if not tool_calls_equal(primary.tool_calls, candidate.tool_calls):
        return False
    a = _spoken(primary) if primary.refusal else primary.text  # `_spoken`, without the call
    b = _spoken(candidate) if candidate.refusal else candidate.text
    if a == b:
        return True
    if a.isascii() and b.isascii() and _first_word(a) != _first_word(b):
        return False  # the normalised texts begin with these words: they differ
    return normalise_text(a) == normalise_text(b)


def _first_word(text: str) -> str:
    """The first word of an ASCII text as `normalise_text` begins with it (its first word,
    or all of it with the trailing punctuation dropped): two texts whose first words differ
    normalise differently, which the whole text's normalisation (~1 µs a kB) need not show."""
    words = text.split(None, 1)
    return words[0].lower().rstrip(_TRAILING) if words else ""


#: A text beside tool calls at most this long, in at most two sentences, is a preamble ("I'll
#: look that up for you."): it announces the calls, it does not answer.
PREAMBLE_MAX_CHARS = 200
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def is_preamble(text: str) -> bool:
    stripped = text.strip()
    return len(stripped) <= PREAMBLE_MAX_CHARS and len(_SENTENCE_END.findall(stripped)) <= 2


def tool_match(primary: Output, candidate: Output) -> bool:
    """The same tool calls on both sides (names, arguments as JSON; parallel calls in any
    order), and nothing else said but a preamble on either side (cascade-2): the calls are the
    answer, and a model that announces them does the same thing as one that does not. The
    preamble is reported by the format check (`tool_preamble_added`)."""
    return (
        bool(primary.tool_calls)
        and bool(candidate.tool_calls)
        and tool_calls_equal(primary.tool_calls, candidate.tool_calls)
        and not primary.refusal
        and not candidate.refusal
        and is_preamble(primary.text)
        and is_preamble(candidate.text)
    )


def json_match(primary: Output, candidate: Output) -> bool:
    a, b = primary.parsed_json, candidate.parsed_json
    return (
        a is not None
        and b is not None
        and json_equal(a, b)
        and tool_calls_equal(primary.tool_calls, candidate.tool_calls)
    )


_Side = Literal["primary", "candidate", "same", "different"]
_PRIMARY_FIRST: dict[OrderLabel, _Side] = {
    "A": "primary",
    "B": "candidate",
    "same": "same",
    "different": "different",
}
_CANDIDATE_FIRST: dict[OrderLabel, _Side] = {**_PRIMARY_FIRST, "A": "candidate", "B": "primary"}
_AGREED: dict[_Side, Verdict] = {
    "same": Verdict.EQUIVALENT,
    "candidate": Verdict.CANDIDATE_BETTER,
    "primary": Verdict.CANDIDATE_WORSE,
    "different": Verdict.DIFFERENT,
}


def combine_orders(primary_first: OrderVerdict, candidate_first: OrderVerdict) -> Equivalence:
    """Both orders agree → that verdict; any disagreement → `different`, orders_agree=False."""
    first = _PRIMARY_FIRST[primary_first.label]
    second = _CANDIDATE_FIRST[candidate_first.label]
    if first == second:
        return Equivalence(_AGREED[first], Tier.LLM, primary_first.reason, orders_agree=True)
    reason = (
        f"judge orders disagree (primary shown first: {first}; candidate shown first: "
        f"{second}): {primary_first.reason} / {candidate_first.reason}"
    )
    return Equivalence(Verdict.DIFFERENT, Tier.LLM, reason, orders_agree=False)


CacheKey = tuple[bytes, str]
V = TypeVar("V")


class VerdictCache(Generic[V]):
    """A bounded in-memory LRU of LLM verdicts by (content hash, judge version); size 0 = off.
    Also the refusal tier's cache of classes (`judge.scorers.refusal_tier`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[CacheKey, V] = OrderedDict()

    def get(self, key: CacheKey) -> V | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: CacheKey, value: V) -> None:
        if self.size <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def content_digest(*parts: str) -> bytes:
    """A hash of `parts` that no other split of the same text gives (each part length-prefixed)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.digest()


def content_key(question: Question, primary: str, candidate: str, version: str) -> CacheKey:
    return content_digest(question.system, question.user, primary, candidate), version


class EquivalenceCascade:
    """Runs the tiers for one pair. `decide_cheap` is synchronous and decides most pairs;
    `decide_llm` is the awaited last tier. The cascade does not own the judge (the scorer
    does) and never raises for a judge failure."""

    def __init__(self, judge: PairwiseJudge | None, *, version: str, cache_size: int) -> None:
        self.judge = judge
        self.version = version
        self.cache = VerdictCache[Equivalence](cache_size)
        self._in_flight: dict[CacheKey, asyncio.Future[Equivalence]] = {}

    def decide_cheap(self, call: CapturedCall, candidate: ArmResult) -> Equivalence | None:
        """The verdict of the deterministic tiers, or None when the LLM tier has to decide."""
        cut = call.truncated.bus
        reason = unusable_reason(call.primary, "primary", bus_cut=cut) or unusable_reason(
            candidate, "candidate", bus_cut=cut
        )
        if reason is not None:
            return not_judged(reason)
        primary_out, candidate_out = call.primary.output, candidate.output
        assert primary_out is not None and candidate_out is not None
        return self.decide_usable(primary_out, candidate_out)

    def decide_usable(self, primary: Output, candidate: Output) -> Equivalence | None:
        """`decide_cheap` for two answers `unusable_reason` has nothing against (the scorer
        has asked it already)."""
        if exact_match(primary, candidate):
            return _EXACT
        if json_match(primary, candidate):
            return _JSON
        if tool_match(primary, candidate):
            return _TOOLS
        if self.judge is None:
            return _NO_JUDGE
        return None

    async def decide(self, call: CapturedCall, candidate: ArmResult) -> Equivalence:
        cheap = self.decide_cheap(call, candidate)
        return cheap if cheap is not None else await self.decide_llm(call, candidate)

    async def decide_llm(self, call: CapturedCall, candidate: ArmResult) -> Equivalence:
        """The LLM tier, through the cache; call only when `decide_cheap` returned None."""
        question = extract_question(call.api, call.request)
        if question is None:
            return not_judged("request not captured: the judge needs the question")
        if self.judge is None or call.primary.output is None or candidate.output is None:
            return not_judged(NO_JUDGE_REASON)
        primary, answer = render_answer(call.primary.output), render_answer(candidate.output)
        key = content_key(question, primary, answer, self.version)
        hit = self.cache.get(key)
        if hit is not None:
            return replace(hit, cached=True)
        pending = self._in_flight.get(key)
        if pending is not None:
            try:
                return replace(await asyncio.shield(pending), cached=True)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
            return await self.decide_llm(call, candidate)  # the asker was cancelled, not us
        future: asyncio.Future[Equivalence] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._ask(self.judge, question, primary, answer)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._in_flight[key]
        future.set_result(result)
        if result.verdict is not Verdict.ERROR:
            self.cache.put(key, result)
        return result

    async def _ask(
        self, judge: PairwiseJudge, question: Question, primary: str, candidate: str
    ) -> Equivalence:
        try:
            first, second = await judge.ask_both(question, primary, candidate)
        except JudgeCallError as exc:
            return Equivalence(Verdict.ERROR, Tier.LLM, str(exc))
        return combine_orders(first, second)
