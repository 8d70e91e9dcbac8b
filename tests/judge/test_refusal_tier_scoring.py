"""The refusal tier inside the judge: which sides reach it, what the row says, and that a pair is
stored (and rejudged) whatever the LLM judge does. The judge is a fake provider driven through
the official SDK; it answers the pairwise rubric and the classification prompt alike."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from judge.comparison import RefusalFinding, RefusalTier
from judge.config import JudgeSettings
from judge.rejudge import rejudge
from judge.scorers.pairwise import PairwiseJudge
from judge.scorers.refusal import DETECTOR_VERSION, detect_refusal
from judge.scorers.refusal_tier import SYSTEM as CLASSIFY_SYSTEM
from judge.scoring import Scorer, judge_version
from judge.store.rows import COMPARISON_FIELDS, comparison_row, insert
from judge.store.store import AsyncStore
from mirror.bus.memory import MemoryBus
from mirror.config import ProviderSettings
from mirror.events import ProviderKind, ShadowPair, dump_event
from mirror.pricing import PriceTable
from simulation.demo.models import section
from simulation.providers import FakeReply, last_user_text, openai_app, serve
from tests.judge.test_scoring import make_pair
from tests.judge.test_worker import TOPICS, run_worker

Responder = Callable[[dict[str, Any], Mapping[str, str]], FakeReply]
#: The rules are unsure of this one (a limit stated, then an answer); the judge is asked.
UNSURE = "I can't browse the internet, but Paris has been the capital of France since 987."
SURE_ANSWER = "The capital of France is Paris."
SURE_REFUSAL = "I'm sorry, but I can't help with that request."
SINCE = datetime.now(UTC) - timedelta(days=1)


def test_the_texts_fall_where_the_tests_need_them() -> None:
    """Pins the premise: if the rules change, these texts may need replacing."""
    assert 0.2 <= detect_refusal(UNSURE).score <= 0.8
    assert detect_refusal(SURE_ANSWER).score < 0.2
    assert detect_refusal(SURE_REFUSAL).score > 0.8


def judge_reply(label: str, classified: list[str]) -> Responder:
    """Classifies as `label` (recording the answer it read) and calls every pair `same`."""

    def respond(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply:
        prompt = last_user_text(body)
        if body["messages"][0]["content"] != CLASSIFY_SYSTEM:
            return FakeReply(text='{"verdict": "same", "reason": "same facts"}')
        answer = section(prompt, "answer")
        assert answer is not None
        classified.append(answer)
        return FakeReply(text=f"Reasoning.\n{label}")

    return respond


@contextmanager
def scorer_with(responder: Responder, **settings: Any) -> Iterator[tuple[Any, Scorer]]:
    app = openai_app(responder=responder)
    with serve(app) as served:
        judge_settings = JudgeSettings(provider="judge", model="judge-model", **settings)
        providers = {"judge": ProviderSettings(kind=ProviderKind.OPENAI, base_url=served.url)}
        judge = PairwiseJudge.from_settings(judge_settings, providers)
        yield app, Scorer(judge_settings, providers, PriceTable(), judge)


async def test_an_uncertain_side_is_decided_by_the_llm_and_the_row_says_so() -> None:
    classified: list[str] = []
    with scorer_with(judge_reply("1_full_compliance", classified)) as (app, scorer):
        async with scorer:
            row = await scorer.score(make_pair(SURE_ANSWER, UNSURE))
    assert classified == [UNSURE]  # the sure primary was not sent
    assert (row.refusal_candidate, row.refusal_candidate_tier) == (False, RefusalTier.LLM)
    assert row.refusal_candidate_score == detect_refusal(UNSURE).score  # the rules' score stays
    assert (row.refusal_primary, row.refusal_primary_tier) == (False, RefusalTier.RULES)
    assert row.refusal_finding is RefusalFinding.NONE and row.refusal_evidence == ""


async def test_a_refusal_found_by_the_llm_makes_the_finding() -> None:
    classified: list[str] = []
    with scorer_with(judge_reply("3_partial_refusal", classified)) as (app, scorer):
        async with scorer:
            row = await scorer.score(make_pair(UNSURE, SURE_REFUSAL))
    assert classified == [UNSURE]
    assert (row.refusal_primary, row.refusal_primary_tier) == (True, RefusalTier.LLM)
    assert (row.refusal_candidate, row.refusal_candidate_tier) == (True, RefusalTier.RULES)
    assert row.refusal_finding is RefusalFinding.BOTH
    primary_only = await _score_one("3_partial_refusal", make_pair(UNSURE, SURE_ANSWER))
    assert primary_only.refusal_finding is RefusalFinding.PRIMARY_ONLY
    assert primary_only.refusal_evidence.endswith("(LLM judge: 3_partial_refusal)")


async def _score_one(label: str, pair: ShadowPair) -> Any:
    with scorer_with(judge_reply(label, [])) as (app, scorer):
        async with scorer:
            return await scorer.score(pair)


async def test_the_same_answer_again_makes_no_llm_call() -> None:
    """Every arm of a call shares the primary's answer, and identical answers recur: the tier's
    cache (and in-flight sharing within a batch) asks the judge once per distinct answer."""
    classified: list[str] = []
    with scorer_with(judge_reply("2_full_refusal", classified)) as (app, scorer):
        async with scorer:
            batch = await scorer.score_many([make_pair(SURE_ANSWER, UNSURE) for _ in range(4)])
            later = await scorer.score(make_pair(UNSURE, SURE_ANSWER))
    assert classified == [UNSURE]
    assert all(r.refusal_candidate_tier is RefusalTier.LLM and r.refusal_candidate for r in batch)
    assert later.refusal_primary and later.refusal_primary_tier is RefusalTier.LLM
    assert scorer.refusal_tier.calls == 1


async def test_without_an_llm_judge_or_with_the_tier_off_the_rules_decide() -> None:
    rules_only = Scorer(JudgeSettings(), {}, PriceTable(), None)
    row = await rules_only.score(make_pair(SURE_ANSWER, UNSURE))
    assert row.refusal_candidate_tier is RefusalTier.RULES
    assert row.refusal_candidate == detect_refusal(UNSURE).refused
    classified: list[str] = []
    with scorer_with(
        judge_reply("1_full_compliance", classified), refusal_tier={"enabled": False}
    ) as (
        app,
        scorer,
    ):
        async with scorer:
            row = await scorer.score(make_pair(SURE_ANSWER, UNSURE))
    assert classified == [] and row.refusal_candidate_tier is RefusalTier.RULES


def test_the_tier_is_part_of_the_judge_version_when_it_is_on() -> None:
    oa = ProviderSettings(kind=ProviderKind.OPENAI, base_url="http://127.0.0.1:9")
    on = JudgeSettings(provider="oa", model="m", refusal_tier={"band": (0.3, 0.7)})
    judge = PairwiseJudge.from_settings(on, {"oa": oa})
    assert f"|{DETECTOR_VERSION}+refusal-llm-1@0.3-0.7|" in judge_version(on, judge)
    off = JudgeSettings.model_validate({**on.model_dump(), "refusal_tier": {"enabled": False}})
    assert f"|{DETECTOR_VERSION}|" in judge_version(off, judge)
    assert f"|{DETECTOR_VERSION}|" in judge_version(on, None)  # no judge, no tier


# --- stored rows ---------------------------------------------------------------------------


def tiers_stored(store: AsyncStore) -> list[tuple[Any, ...]]:
    with store.store._call("read tiers") as ch:
        return list(
            ch.query(
                "SELECT call_id, judge_version, refusal_candidate, refusal_primary_tier,"
                " refusal_candidate_tier FROM comparisons ORDER BY call_id, judge_version"
            ).result_rows
        )


async def test_the_tier_is_stored_and_a_failing_judge_still_stores_the_pair(
    migrated_store: AsyncStore,
) -> None:
    store = migrated_store
    classified: list[str] = []
    with scorer_with(judge_reply("1_full_compliance", classified)) as (app, scorer):
        async with scorer:
            decided = make_pair(SURE_ANSWER, UNSURE)
            rows = await scorer.score_many([decided])
    failing = openai_app(responder=lambda body, headers: FakeReply(status=503))
    with serve(failing) as served:
        settings = JudgeSettings(provider="judge", model="judge-model", max_retries=0)
        providers = {"judge": ProviderSettings(kind=ProviderKind.OPENAI, base_url=served.url)}
        judge = PairwiseJudge.from_settings(settings, providers)
        async with Scorer(settings, providers, PriceTable(), judge) as broken:
            undecided = make_pair(SURE_ANSWER, UNSURE)
            failed = await broken.score_many([undecided])
    assert broken.refusal_tier.failures == 1
    assert failed[0].refusal_candidate == detect_refusal(UNSURE).refused  # the rules stood
    assert await store.insert_pairs([decided], rows) == 1
    assert await store.insert_pairs([undecided], failed) == 1
    stored = {row[0]: row[1:] for row in await store.run(tiers_stored, store)}
    assert stored[decided.call.call_id][1:] == (False, "rules", "llm")
    assert stored[undecided.call.call_id][1:] == (
        detect_refusal(UNSURE).refused,
        "rules",
        "rules",
    )


async def test_rows_written_without_the_tier_columns_read_as_rules(
    migrated_store: AsyncStore,
) -> None:
    """A writer that predates migration 7 (and every row stored before it) means `rules`."""
    row = (await Scorer(JudgeSettings(), {}, PriceTable(), None).score_many([make_pair()]))[0]
    old_fields = [f for f in COMPARISON_FIELDS if not f.endswith("_tier")]
    values = dict(zip(COMPARISON_FIELDS, comparison_row(row), strict=True))
    with migrated_store.store._call("old writer") as ch:
        insert(ch, "comparisons", old_fields, [tuple(values[f] for f in old_fields)], "old-1")
    assert await migrated_store.run(tiers_stored, migrated_store) == [
        (row.call_id, row.judge_version, row.refusal_candidate, "rules", "rules")
    ]


async def test_rejudge_with_the_tier_writes_beside_the_rules_only_rows(
    migrated_store: AsyncStore,
) -> None:
    store = migrated_store
    pairs = [make_pair(SURE_ANSWER, UNSURE), make_pair(SURE_ANSWER, SURE_REFUSAL)]
    rules_only = Scorer(JudgeSettings(), {}, PriceTable(), None)
    assert await store.insert_pairs(pairs, await rules_only.score_many(pairs)) == 2
    classified: list[str] = []
    with scorer_with(judge_reply("1_full_compliance", classified)) as (app, scorer):
        async with scorer:
            report = await rejudge(store, scorer, "to-sonnet", SINCE)
            again = await rejudge(store, scorer, "to-sonnet", SINCE)
    assert (report.scored, report.written, again.written) == (2, 2, 0)
    assert classified == [UNSURE]  # the second rejudge wrote nothing and asked nothing new
    stored = await store.run(tiers_stored, store)
    new = [r for r in stored if r[1] == scorer.version]
    old = [r for r in stored if r[1] == rules_only.version]
    assert len(new) == len(old) == 2
    assert sorted(r[4] for r in new) == ["llm", "rules"]
    assert {r[4] for r in old} == {"rules"}
    assert json.dumps(sorted(r[2] for r in new)) == "[false, true]"


async def test_the_worker_counts_tier_decisions_and_failures(migrated_store: AsyncStore) -> None:
    """The first classification fails (the rules' verdict is stored, the failure counted); the
    same answer in the next batch is asked again and decided by the judge."""
    asked: list[str] = []

    def respond(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply:
        if body["messages"][0]["content"] != CLASSIFY_SYSTEM:
            return FakeReply(text='{"verdict": "same", "reason": "same facts"}')
        asked.append("classify")
        return FakeReply(status=503) if len(asked) == 1 else FakeReply(text="1_full_compliance")

    bus = MemoryBus()
    pairs = [make_pair(SURE_ANSWER, UNSURE), make_pair(SURE_ANSWER, UNSURE)]
    for pair in pairs:
        await bus.send(TOPICS.pairs, dump_event(pair))
    with scorer_with(respond, max_retries=0) as (app, scorer):
        async with scorer:
            worker = await run_worker(bus, migrated_store, scorer, records=2, batch_rows=1)
    samples = worker.metrics.registry.get_sample_value
    assert samples("shadowjudge_judge_refusal_tier_failures_total") == 1
    where = {"migration": "to-sonnet", "arm": "sonnet", "side": "candidate"}
    assert samples("shadowjudge_judge_refusal_llm_total", where) == 1
    assert samples("shadowjudge_judge_refusal_llm_total", {**where, "side": "primary"}) is None
    stored = {row[0]: row[4] for row in await migrated_store.run(tiers_stored, migrated_store)}
    assert [stored[p.call.call_id] for p in pairs] == ["rules", "llm"]
    assert asked == ["classify", "classify"]
