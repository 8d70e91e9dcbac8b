"""Text and numbers in the charts: escaping for XML, coordinates at a fixed precision, number,
percentage and tick-label formats, CSS class slugs, and the estimates the layout is planned with
(the width of a piece of text from its length and font size, the box it takes up, and whether two
such boxes collide), since the real glyph widths are only known to the browser."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Real

from markupsafe import escape

_CHAR_WIDTH = 0.6  # average glyph width as a share of the font size, for layout estimates

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(text: str) -> str:
    """Escaped for XML text and attributes; characters XML cannot hold at all are dropped."""
    return str(escape(_XML_INVALID.sub("", str(text))))


def _f(x: float) -> str:
    """A coordinate, at a fixed precision."""
    s = f"{x:.1f}"
    return "0.0" if s == "-0.0" else s


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[: max(1, max_chars - 1)].rstrip() + "…"


def _text_width(text: str, font_size: float) -> float:
    return len(text) * font_size * _CHAR_WIDTH


@dataclass(frozen=True, slots=True)
class _Box:
    """A rectangle of the viewBox (y grows downward), for layout checks."""

    left: float
    top: float
    right: float
    bottom: float

    def overlaps(self, other: _Box, gap: float = 0.0) -> bool:
        """True if the two come closer than `gap` (merely touching at `gap` is not overlapping)."""
        return (
            self.left < other.right + gap
            and other.left < self.right + gap
            and self.top < other.bottom + gap
            and other.top < self.bottom + gap
        )

    def within(self, other: _Box) -> bool:
        return (
            self.left >= other.left
            and self.right <= other.right
            and self.top >= other.top
            and self.bottom <= other.bottom
        )


def _text_box(x: float, y: float, text: str, font_size: float, anchor: str) -> _Box:
    """The estimated box of a `<text>` at (x, y) (y the baseline) with this `text-anchor`:
    `_text_width` wide, from 0.8 font sizes above the baseline to 0.2 below it."""
    width = _text_width(text, font_size)
    left = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
    return _Box(left, y - 0.8 * font_size, left + width, y + 0.2 * font_size)


def _number(x: object) -> float | None:
    """`x` as a finite float, or None (for None, NaN, infinities and non-numbers)."""
    if isinstance(x, bool) or not isinstance(x, Real):
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _fmt_num(v: float) -> str:
    a = abs(v)
    if a >= 100:
        s = f"{v:,.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return "0" if s.strip("-0.,") == "" else s


def _fmt_pct(v: float) -> str:
    p = v * 100
    a = abs(p)
    if a == 0:
        return "0%"
    s = f"{p:.2f}" if a < 1 else f"{p:.1f}"
    return f"{s}%"


def _fmt_rate(v: float, percent: bool) -> str:
    return _fmt_pct(v) if percent else f"{v:.3f}"


def _decimals(step: float) -> int:
    """Digits after the point needed to write multiples of `step` exactly."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _tick_label(v: float, step: float, *, percent: bool) -> str:
    if percent:
        return f"{v * 100:,.{_decimals(step * 100)}f}%"
    return f"{v:,.{_decimals(step)}f}"


def _log_tick_label(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def slugify(name: str) -> str:
    """The CSS class suffix for a name: lower case, runs of other characters as one `-`
    (`"not judged"` and `"not_judged"` are both `not-judged`); `part` if nothing is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "part"
