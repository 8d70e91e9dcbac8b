"""Necessary conditions of the refusal rules, derived from their regular expressions.

`clauses(pattern)` reads a compiled pattern's parse tree (`re._parser`, the parser `re.compile`
itself uses) and returns literal strings in conjunctive normal form: every string the pattern
can match contains, for each clause, at least one of that clause's strings. So a text that
lacks every string of some clause holds no match of the pattern anywhere: the pattern need
not be run on it. `necessary(pattern)` is the one clause a gate uses (see `judge.scorers.
refusal`, which skips all rules of an answer that holds none of them), and `literal_scan`
compiles strings into one pattern that finds any of them in one scan.

Why the clauses hold (by induction over the tree; each node gets `exact`, when not None every
string the node can match, and `clauses`, the property above for the strings it matches):

* a literal character matches itself: exact {c}; a class of a few literal characters one of
  them; any other class, `.` or a back reference: no claim (exact None, no clause);
* anchors (`\\b`, `^`) and lookarounds match the empty string wherever they succeed: exact
  {""}, whatever they require of the text around (it is not part of the match);
* a concatenation matches s1 + s2 + ... with si matched by its i-th part: so it contains every
  si and meets every part's clauses; while the parts are exact, so is the product of their
  sets (bounded by `_EXACT_MAX`); where that stops, the product so far is a clause (every
  match contains one of its strings, as a substring);
* an alternation matches what one branch matches: the union of one clause per branch is a
  clause (each match meets its branch's), whichever clause is taken from each branch (the
  best, or one several branches share), and the union of exact sets is exact;
* a repeat of at least one contains a match of its body and meets the body's clauses;
  `x?` matches "" or x (exact: x's set and ""); other optional repeats: no claim;
* groups match what their contents match (inline flags are refused: case-insensitive
  patterns would break the literal reading, and the detector's patterns have none).

`re._parser` is CPython's own (private) parser since 3.11, the version the project pins; a
Python whose parse trees differ makes `clauses` fail at import, in the tests, rather than let a
gate skip a rule silently. Deriving the clauses costs ~40 ms at import.

A clause holding "" says nothing and is dropped; a string of a clause that contains another
string of the same clause is dropped too (where it occurs, the shorter one does), so a clause
is met by a text exactly when it was before. The tests check the claim on random texts and
on every rule's own matches.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

# `re._parser` (3.11+) has no stub, and importing the old `sre_parse` name warns
_parser: Any = importlib.import_module("re._parser")
_k: Any = importlib.import_module("re._constants")

#: Most strings an exact set holds before it becomes a clause.
_EXACT_MAX = 64
#: Most characters a class holds to be read as its characters.
_CLASS_MAX = 8


@dataclass(frozen=True, slots=True)
class _Info:
    #: Every string the node can match, when they are few; None otherwise.
    exact: frozenset[str] | None
    #: Every match contains a string of each clause.
    clauses: tuple[frozenset[str], ...]


_UNKNOWN = _Info(None, ())
_EMPTY = _Info(frozenset({""}), ())


@cache  # the detector asks for some patterns' clauses twice at import
def clauses(pattern: re.Pattern[str]) -> tuple[frozenset[str], ...]:
    """Clauses of strings every match of `pattern` meets (each: contains one of its strings)."""
    if pattern.flags & (re.IGNORECASE | re.VERBOSE):
        raise ValueError(f"flags are not supported: {pattern.pattern!r}")
    return _candidates(_sequence(_parser.parse(pattern.pattern, pattern.flags)))


def necessary(pattern: re.Pattern[str]) -> frozenset[str]:
    """The best clause of `pattern`: its shortest string the longest, then the fewest strings
    (a text must hold one of them for the pattern to match anywhere in it)."""
    found = clauses(pattern)
    if not found:
        raise ValueError(f"no literal every match holds: {pattern.pattern!r}")
    return _best(found)


def literal_scan(strings: Iterable[str]) -> re.Pattern[str]:
    """One pattern that finds any of `strings`, written as a trie: Python's engine tries an
    alternation's branches one by one at every position, so "abc|abd|b" costs three tests
    where "ab[cd]|b" costs two (a flat alternation of 700 strings is 40 times slower)."""
    trie: dict[str, Any] = {}
    for string in strings:
        if not string:
            raise ValueError("an empty string matches everywhere")
        node = trie
        for char in string:
            node = node.setdefault(char, {})
        node[""] = {}
    return re.compile(_trie(trie))


def covers(strings: Iterable[str], clause: Iterable[str]) -> bool:
    """Whether every string of `clause` contains one of `strings`: then a text that meets the
    clause holds one of `strings`, which are as necessary as the clause is."""
    found = tuple(strings)
    return all(any(string in member for string in found) for member in clause)


def minimal(clause: Iterable[str]) -> frozenset[str]:
    """The clause without strings that contain another of its strings (met by the same texts)."""
    kept: list[str] = []
    for string in sorted(set(clause), key=len):  # a string can hold only shorter ones
        for shorter in kept:  # a plain loop: any() over a generator is ten times slower here
            if shorter in string:
                break
        else:
            kept.append(string)
    return frozenset(kept)


def _trie(node: dict[str, Any]) -> str:
    branches = [re.escape(char) + _trie(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:  # a string ends here: the rest is optional
        return body + "?" if len(branches) == 1 and len(branches[0]) == 1 else f"(?:{body})?"
    return body


def _best(found: Iterable[frozenset[str]]) -> frozenset[str]:
    return max(found, key=lambda clause: (min(map(len, clause)), -len(clause)))


def _candidates(info: _Info) -> tuple[frozenset[str], ...]:
    found = list(info.clauses)
    if info.exact is not None:
        found.append(info.exact)
    return tuple(dict.fromkeys(minimal(clause) for clause in found if "" not in clause))


def _sequence(items: Any) -> _Info:
    exact: frozenset[str] | None = frozenset({""})
    found: list[frozenset[str]] = []
    complete = True  # `exact` is every string the items so far match
    for op, av in items:
        info = _node(op, av)
        found += info.clauses
        if exact is not None and info.exact is not None:
            if len(exact) * len(info.exact) <= _EXACT_MAX:
                exact = frozenset(a + b for a in exact for b in info.exact)
                continue
        complete = False
        if exact is not None:
            found.append(exact)
        exact = info.exact
    if not complete:
        if exact is not None:
            found.append(exact)
        exact = None
    return _Info(exact, tuple(c for c in found if "" not in c))


def _node(op: Any, av: Any) -> _Info:
    if op is _k.LITERAL:
        return _Info(frozenset({chr(av)}), ())
    if op is _k.IN:
        chars: set[str] = set()
        for kind, value in av:
            if kind is _k.LITERAL:
                chars.add(chr(value))
            elif kind is _k.RANGE and value[1] - value[0] < _CLASS_MAX:
                chars.update(chr(code) for code in range(value[0], value[1] + 1))
            else:  # a negation, a category (\w, \s) or a wide range
                return _UNKNOWN
        return _Info(frozenset(chars), ()) if len(chars) <= _CLASS_MAX else _UNKNOWN
    if op is _k.AT or op is _k.ASSERT or op is _k.ASSERT_NOT:
        return _EMPTY
    if op is _k.SUBPATTERN:
        _, add_flags, del_flags, sub = av
        if add_flags or del_flags:
            raise ValueError("inline flags are not supported")
        return _sequence(sub)
    if op is _k.ATOMIC_GROUP:
        return _sequence(av)
    if op is _k.BRANCH:
        branches = [_sequence(branch) for branch in av[1]]
        exact = None
        if all(branch.exact is not None for branch in branches):
            union = frozenset().union(*(branch.exact or () for branch in branches))
            exact = union if len(union) <= _EXACT_MAX else None
        picks = [_candidates(branch) for branch in branches]
        if not all(picks):
            return _Info(exact, ())
        # one clause per branch, united: each the branches' best, or one they share (the
        # tail of `refusal_cues.words` is in every branch) where a branch has it
        found = {frozenset().union(*(_best(pick) for pick in picks))}
        counts = Counter(clause for pick in picks for clause in pick)
        for shared in (clause for clause, count in counts.items() if count > 1):
            found.add(frozenset().union(*(shared if shared in p else _best(p) for p in picks)))
        return _Info(exact, tuple(found))
    if op is _k.MAX_REPEAT or op is _k.MIN_REPEAT or op is _k.POSSESSIVE_REPEAT:
        low, high, sub = av
        body = _sequence(sub)
        if low == 0:
            if high == 1 and body.exact is not None:
                return _Info(body.exact | {""}, ())
            return _UNKNOWN
        if low == high == 1:
            return body
        return _Info(None, _candidates(body))
    return _UNKNOWN  # back references, conditionals: no claim
