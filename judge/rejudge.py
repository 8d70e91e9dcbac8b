"""`shadowjudge rejudge`: score stored pairs again with the current judge version.

When the rubric, the judge model or a scorer changes, the judge version changes with it, and
the new verdicts are written beside the old ones (the version is part of every comparison's
key and of the aggregates' key), so a dashboard can show both and nothing is overwritten.
Pairs whose bodies have expired (the store's TTL) cannot be judged again and are not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from judge.scoring import Scorer
from judge.store.store import AsyncStore
from mirror.events import ShadowPair


@dataclass
class RejudgeReport:
    scored: int = 0
    written: int = 0  # new rows; pairs already judged at this version are not written again


async def rejudge(
    store: AsyncStore,
    scorer: Scorer,
    migration: str,
    since: datetime,
    until: datetime | None = None,
    *,
    batch: int = 1_000,
) -> RejudgeReport:
    report = RejudgeReport()
    pending: list[ShadowPair] = []

    async def flush() -> None:
        comparisons = await scorer.score_many(pending)
        report.scored += len(pending)
        report.written += await store.insert_pairs(pending, comparisons)
        pending.clear()

    async for pair in store.read_pairs(migration, since, until, page_rows=batch):
        pending.append(pair)
        if len(pending) >= batch:
            await flush()
    if pending:
        await flush()
    return report
