"""Translation coverage of the demo mix: what the cross-provider replay skips, and what is left
for the judge.

    .venv/bin/python -m tests.benchmarks.translation_coverage [--pairs 20000] [--faithful]

The demo traffic mix (`tests.demo_mix`) builds its pairs directly, as if every arm had been
called. Here each candidate pair's captured request (Chat Completions) is first translated for
the candidate (Anthropic Messages) exactly as the runner does (`mirror.runner.worker.
replay_request` with an arm's default settings): a request the translation refuses becomes a
skipped arm with the runner's reason, one translated approximately keeps its answer and counts
as approximate. Then the judge's deterministic tiers decide what they can. Printed: the share
decided without an LLM call, the share not judged, the share needing the LLM judge, and the
cross-provider skips by reason. `--faithful` translates as before approximate translations
existed (faithfully or not at all, as a served call still is): the "before" figures.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from judge.comparison import Tier
from judge.scorers.equivalence import NO_JUDGE_REASON, EquivalenceCascade
from mirror.errors import Untranslatable
from mirror.events import Api, ArmKind, ArmResult, ErrorInfo, ErrorKind
from mirror.migrations import ArmSettings
from mirror.runner.worker import replay_request
from mirror.translate.replay import Replay
from mirror.translate.request import translate_request
from tests.demo_mix import demo_pairs

TARGET = Api.ANTHROPIC_MESSAGES
ARM = ArmSettings(name="claude", provider="anthropic", model="claude-sonnet-4-6")


def faithful(request: dict[str, Any], source: Api, target: Api, arm: ArmSettings) -> Replay:
    body = translate_request(
        request,
        source=source,
        target=target,
        model=arm.model,
        default_max_tokens=arm.default_max_tokens,
        sampling=arm.sampling,
    )
    return Replay(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--faithful", action="store_true", help="no approximate translations")
    args = parser.parse_args()
    translate = faithful if args.faithful else replay_request
    cascade = EquivalenceCascade(None, version="coverage", cache_size=0)
    tiers: Counter[str] = Counter()
    skips: Counter[str] = Counter()
    approximations: Counter[str] = Counter()
    cross = approximate = 0
    for pair in demo_pairs(args.pairs):
        result = pair.result
        if pair.arm.kind is ArmKind.CANDIDATE and pair.call.api is Api.OPENAI_CHAT:
            cross += 1
            assert pair.call.request is not None
            try:
                replay = translate(pair.call.request, pair.call.api, TARGET, ARM)
            except Untranslatable as exc:
                reason = f"untranslatable: {exc.reason}"
                skips[reason] += 1
                result = ArmResult(
                    provider=ARM.provider,
                    model=ARM.model,
                    latency_ms=0.0,
                    error=ErrorInfo(kind=ErrorKind.SKIPPED, message=reason),
                )
            else:
                approximate += bool(replay.approximations)
                approximations.update(replay.approximations)
        verdict = cascade.decide_cheap(pair.call, result)
        if verdict is None or verdict.reason == NO_JUDGE_REASON:
            tiers["llm"] += 1
        else:
            tiers["none" if verdict.tier is Tier.NONE else "cheap"] += 1
    n = args.pairs
    print(  # noqa: T201
        f"demo mix, {n:,} pairs: {tiers['cheap'] / n:.1%} decided without an LLM call, "
        f"{tiers['none'] / n:.1%} not judged, {tiers['llm'] / n:.1%} for the LLM judge; "
        f"cross-provider pairs {cross:,}: {sum(skips.values()) / cross:.1%} skipped, "
        f"{approximate / cross:.1%} approximate"
    )
    for reason, count in skips.most_common():
        print(f"  skipped {count / cross:6.2%} ({count:,}) {reason}")  # noqa: T201
    for note, count in approximations.most_common():
        print(f"  approximate {count / cross:6.2%} ({count:,}) {note}")  # noqa: T201


if __name__ == "__main__":
    main()
