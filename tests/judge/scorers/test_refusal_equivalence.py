"""The refusal detector made faster gives every verdict the frozen rules gave.

`refusal_rules_2` is the detector of `DETECTOR_VERSION` "refusal-rules-2" as it was before its
prefilters and shortcuts (see its README). Compared on every field of the verdict (refused,
kind, score, evidence, cue) and on the `reads` flag of `detect_refusal_scoped`, with the request
and without: XSTest's answers and their 4 kB joins, the implicit-refusal cases, both sides of
`demo_pairs(20000)` and `deterministic_pairs(20000)`, and random texts made of the rules' own
words, JSON and XSTest answers cut and spliced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judge.scorers.pairwise import extract_question
from judge.scorers.refusal import DETECTOR_VERSION, detect_refusal, detect_refusal_scoped
from tests.benchmarks.refusal_speed import long_pairs, xstest_pairs
from tests.demo_mix import demo_pairs, deterministic_pairs
from tests.judge.scorers.refusal_rules_2 import refusal as frozen
from tests.judge.scorers.test_refusal_implicit import (
    CAVEAT_THEN_DELIVER,
    HOMONYMS,
    IMPLICIT,
    PRAISE_ANSWERED,
    SET_B_COMPLIED,
    SET_B_REFUSED,
)
from tests.judge.scorers.test_refusal_memo import OTHER_REQUESTS
from tests.judge.scorers.test_refusal_prefilter import VOCABULARY

Fields = tuple[bool, str, float, str | None, str | None, bool]

XSTEST = xstest_pairs()


def now(text: str, request: str | None) -> Fields:
    verdict, reads = detect_refusal_scoped(text, request)
    assert detect_refusal(text, request) == verdict
    return fields(verdict, reads)


def before(text: str, request: str | None) -> Fields:
    return fields(*frozen.detect_refusal_scoped(text, request))


def fields(verdict: Any, reads: bool) -> Fields:
    """Every field of a verdict (the kind as its value: the frozen copy has its own enum)."""
    return (
        verdict.refused,
        verdict.kind.value,
        verdict.score,
        verdict.evidence,
        verdict.cue,
        reads,
    )


def assert_same(answers: Iterable[tuple[str, str | None]]) -> int:
    count = 0
    for text, request in dict.fromkeys(answers):
        for asked in (request, None):
            assert now(text, asked) == before(text, asked), (text, asked)
            count += 1
    return count


def test_the_frozen_rules_are_this_versions() -> None:
    assert frozen.DETECTOR_VERSION == DETECTOR_VERSION


def test_xstest_and_4kb_answers() -> None:
    assert assert_same([*XSTEST, *long_pairs(XSTEST)]) > 2_000


def test_implicit_refusal_cases() -> None:
    answers = [(answer, request) for _, request, answer, _ in IMPLICIT]
    for cases in (CAVEAT_THEN_DELIVER, HOMONYMS, PRAISE_ANSWERED, SET_B_COMPLIED, SET_B_REFUSED):
        answers += [(answer, request) for _, request, answer in cases]
    answers += [(answer, other) for answer, _ in answers for other in OTHER_REQUESTS if other]
    assert assert_same(answers) > 1_000


@pytest.mark.parametrize("mix", [demo_pairs, deterministic_pairs])
def test_both_sides_of_the_demo_mixes(mix: object) -> None:
    assert callable(mix)
    answers: list[tuple[str, str | None]] = []
    for pair in mix(20_000):
        question = extract_question(pair.call.api, pair.call.request)
        for side in (pair.call.primary, pair.result):
            if side.output is not None and side.output.text:
                answers.append((side.output.text, question.user if question else None))
    assert assert_same(answers) > 10_000


_PIECES = st.sampled_from(VOCABULARY) | st.sampled_from(
    [answer[i : i + 60] for answer, _ in XSTEST[::7] for i in range(0, len(answer), 60)]
)
_TEXTS = st.lists(_PIECES | st.text(max_size=6), max_size=25).map("".join) | st.lists(
    _PIECES, max_size=12
).map(" ".join)
_REQUESTS = st.none() | st.sampled_from([r for r in OTHER_REQUESTS if r]) | _TEXTS


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS, _REQUESTS)
def test_random_texts_of_the_rules_words(text: str, request: str | None) -> None:
    assert now(text, request) == before(text, request)
    assert now(text.upper(), request) == before(text.upper(), request)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(XSTEST),
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=0, max_value=400),
    _TEXTS,
)
def test_xstest_answers_cut_and_spliced(
    pair: tuple[str, str], at: int, cut: int, inserted: str
) -> None:
    answer, request = pair
    text = answer[:at] + inserted + answer[at + cut :]
    for asked in (request, None):
        assert now(text, asked) == before(text, asked), (text, asked)
