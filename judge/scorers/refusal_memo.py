"""Refusal verdicts remembered by answer text, for the answers no request can change.

Many answers repeat across calls: labels ("positive", "Neutral."), tool-call preambles ("I'll
look that up for you."), canned replies. The rules (`judge.scorers.refusal`) read the request
only in the implicit-refusal rules, and `detect_refusal_scoped` says when no request could
change a verdict (`refusal_implicit.reads_request`); those verdicts are remembered by the text
alone, in an LRU of `size` texts of at most `max_chars` characters (long answers seldom repeat
and would hold memory), from a text's second time on (the check costs a few scans more than
the verdict, and most texts of a migration never come again: unique JSON extractions, free
text). A verdict that depends on the request is computed every time.
Remembered verdicts equal computed ones: the memo is not part of the judge version.
"""

from __future__ import annotations

from collections import OrderedDict

from judge.scorers.refusal import RefusalVerdict, detect_refusal, detect_refusal_scoped

#: Texts remembered, of at most `MAX_CHARS` characters each: ~4 MB of ASCII at most.
SIZE = 4096
MAX_CHARS = 1000


class RefusalMemo:
    """`detect_refusal` with the verdicts that hold under any request remembered by text."""

    def __init__(self, size: int = SIZE, max_chars: int = MAX_CHARS) -> None:
        self._size = size
        self._max_chars = max_chars
        self._verdicts: OrderedDict[str, RefusalVerdict] = OrderedDict()
        #: Hashes of the texts seen once: whether a verdict holds under any request costs a
        #: few more scans, paid from a text's second time on. A collision only pays it early.
        self._seen: OrderedDict[int, None] = OrderedDict()

    def detect(self, text: str, request: str | None = None) -> RefusalVerdict:
        if len(text) > self._max_chars:
            return detect_refusal(text, request)
        verdicts = self._verdicts
        found = verdicts.get(text)
        if found is not None:
            verdicts.move_to_end(text)
            return found
        seen, key = self._seen, hash(text)
        if key not in seen:  # the first time: most texts never come again
            seen[key] = None
            if len(seen) > self._size:
                seen.popitem(last=False)
            return detect_refusal(text, request)
        del seen[key]
        verdict, reads = detect_refusal_scoped(text, request)
        if not reads:
            verdicts[text] = verdict
            if len(verdicts) > self._size:
                verdicts.popitem(last=False)
        return verdict

    def __len__(self) -> int:
        return len(self._verdicts)
