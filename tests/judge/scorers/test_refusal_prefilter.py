"""Literal clauses derived from the refusal rules' patterns: every match meets them."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import judge.scorers.refusal_cues as cues
from judge.scorers import refusal
from judge.scorers.refusal import _SIGN_OFF, _TRIGGERS
from judge.scorers.refusal_prefilter import clauses, covers, literal_scan, minimal, necessary
from tests.benchmarks.refusal_speed import xstest_pairs

#: Every pattern of the rules that `clauses` must read soundly (the gate uses some of them).
PATTERNS: list[re.Pattern[str]] = [cue.pattern for cue in cues.CUES] + [
    value for value in vars(cues).values() if isinstance(value, re.Pattern)
]
PATTERNS.append(_SIGN_OFF)
CLAUSES = {pattern: clauses(pattern) for pattern in PATTERNS}
#: Words the rules look for, split out of their clauses, and JSON and filler around them.
VOCABULARY = sorted(
    {string for pattern in PATTERNS for clause in clauses(pattern) for string in clause}
    | {'{"intent": "bug"', '"priority": 4}', "```json\n", "\n- ", "1. ", "I ", "I'm ", "It's "}
    | {"sorry", "but", "can't", "help", "here is", "however,", ". ", "? ", "\n", "’", "you "}
)


def meets(text: str, found: tuple[frozenset[str], ...]) -> bool:
    return all(any(string in text for string in clause) for clause in found)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("ab(?:c|d)e", ({"abce", "abde"},)),
        ("x(?:ab|cd)+y", ({"ab", "cd"}, {"x"}, {"y"})),
        ("a|b*", ()),
        (r"(?<!\w)no?t\b", ({"nt", "not"},)),
        (r"[^a]bc\w+", ({"bc"},)),
        (r"(?:foo|bar)?baz", ({"baz", "foobaz", "barbaz"},)),
        (r"(?:cat|dog\w)s", ({"cat", "dog"}, {"s"})),  # a branch not exact: no product
    ],
)
def test_clauses_of_small_patterns(pattern: str, expected: tuple[set[str], ...]) -> None:
    assert set(clauses(re.compile(pattern))) == {minimal(clause) for clause in expected}


def test_flags_and_patterns_without_a_literal_are_refused() -> None:
    with pytest.raises(ValueError, match="flags"):
        clauses(re.compile("abc", re.IGNORECASE))
    with pytest.raises(ValueError, match="no literal"):
        necessary(re.compile(r"\w+"))


def test_every_match_in_xstest_meets_its_patterns_clauses() -> None:
    texts = [answer.lower().replace("’", "'") for answer, _ in xstest_pairs()]
    matched = 0
    for pattern, found in CLAUSES.items():
        for text in texts:
            for match in pattern.finditer(text):
                matched += 1
                assert meets(match.group(), found), (pattern.pattern, match.group())
    assert matched > 10_000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCABULARY) | st.text(max_size=4), max_size=30))
def test_every_match_in_random_text_meets_its_patterns_clauses(parts: list[str]) -> None:
    text = " ".join(parts).lower()
    for pattern, found in CLAUSES.items():
        for match in pattern.finditer(text):
            assert meets(match.group(), found), (pattern.pattern, match.group())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet="abc'. ", min_size=1, max_size=4), min_size=1, max_size=6),
    st.text(alphabet="abcd'. ", max_size=40),
)
def test_literal_scan_finds_a_string_exactly_when_one_occurs(strings: list[str], text: str) -> None:
    assert (literal_scan(strings).search(text) is not None) == any(s in text for s in strings)


def test_the_trigger_scan_lets_refusals_through_and_json_not() -> None:
    assert _TRIGGERS.search("i can't help with that.") is not None
    assert _TRIGGERS.search("it's important to note that this is illegal.") is not None
    assert _TRIGGERS.search('{"customer": "cust-0", "intent": "bug", "priority": 4}') is None
    assert _TRIGGERS.search("positive") is None
    assert _TRIGGERS.search("i'll look that up for you.") is None


def test_a_derived_gate_must_cover_a_clause_of_its_cue(monkeypatch: pytest.MonkeyPatch) -> None:
    assert covers(("s not ",), {"it's not ", "that is not "})
    assert not covers(("s not ",), {"it's not ", "it isn't "})
    monkeypatch.setitem(refusal._DERIVED_GATES, "premise-rejected", ("it's not ",))
    with pytest.raises(ValueError, match="premise-rejected"):
        refusal._cue_checks()
    monkeypatch.setitem(refusal._DERIVED_GATES, "premise-rejected", ("s not ",))
    monkeypatch.setitem(refusal._DERIVED_GATES, "no-such-cue", ("x",))
    with pytest.raises(ValueError, match="no cue"):
        refusal._cue_checks()


def test_a_search_is_skipped_only_for_strings_every_match_needs() -> None:
    assert refusal._needs(_SIGN_OFF, ("else",)) == ("else",)
    with pytest.raises(ValueError, match="not needed"):
        refusal._needs(_SIGN_OFF, ("anything",))  # "... with something else" has none
