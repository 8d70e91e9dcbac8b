"""A segment and the translation filter (`?approximate=`, `report --approximate`) as the stats
segment to read.

Leaving approximately translated pairs out (or reading only them) is reading the stats'
`translation=` segment, crossed with a chosen segment of the call's own labels
(`translation=faithful,tenant=acme`; the stats table keeps every label crossed so, migration
10). The pages and the `report` command read the same way; a bad pair of choices is a
`ValueError` naming them (the pages answer it with 400, the command with exit 2).
"""

from __future__ import annotations

from judge.store.schema import (
    APPROXIMATE_SEGMENT,
    FAITHFUL_SEGMENT,
    crossed_segment,
    split_segment,
)

#: The filter: every pair, only the faithfully translated ones, or only the approximate.
APPROXIMATE = {"include": None, "exclude": FAITHFUL_SEGMENT, "only": APPROXIMATE_SEGMENT}
_FILTER_OF = {translation: name for name, translation in APPROXIMATE.items() if translation}


def chosen_filter(segment: str, approximate: str) -> tuple[str, str]:
    """A segment and a filter as (a segment of the call's own labels, or `*`; the filter):
    `translation=faithful` is the filter `exclude` on all traffic, and a crossed segment its
    two parts, so the page's two menus show what is read. A segment and a filter that
    contradict each other (`translation=faithful` with `only`) are a `ValueError`."""
    if approximate not in APPROXIMATE:
        raise ValueError(f"approximate {approximate!r}: expected one of include, exclude, only")
    if segment != "*" and "=" not in segment:
        raise ValueError(f"segment {segment!r}: expected * or label=value")
    translation, rest = split_segment(segment)
    if translation is None:
        return segment, approximate
    if approximate != "include" and APPROXIMATE[approximate] != translation:
        raise ValueError(
            f"segment {segment!r} and approximate={approximate} select no pair together"
        )
    if rest != "*" and "=" not in rest:
        raise ValueError(f"segment {segment!r}: expected * or label=value after it")
    return rest, _FILTER_OF[translation]


def translation_segment(segment: str, approximate: str) -> str:
    """The stats segment to read for a segment and a filter."""
    segment, approximate = chosen_filter(segment, approximate)
    translation = APPROXIMATE[approximate]
    if translation is None:
        return segment
    return translation if segment == "*" else crossed_segment(segment, translation)
