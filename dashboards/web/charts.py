"""Server-side SVG charts for the dashboard pages and the HTML digest.

Why SVG drawn here rather than a JavaScript charting library:

* No CDN and no JavaScript: a page is complete when it arrives, it works where scripts are
  blocked, and the same markup goes into the HTML digest, where no script would run at all.
* Each function is pure: data in, a `markupsafe.Markup` SVG string out, no I/O. The output is
  deterministic (numbers at a fixed precision, ids derived from the content), so the same input
  gives the same bytes, and pages and digests can be compared and cached.
* Every piece of text (titles, labels, series names) is escaped with `markupsafe.escape`, so the
  `Markup` is safe to drop into an autoescaped Jinja2 template: a series named
  `<script>…</script>` is shown, never run.

Accessibility: each chart is `role="img"` with a `<title>` (its name) and a `<desc>` that says
in words what the data shows, for screen readers; points and bars carry `<title>` tooltips.

Size: the `viewBox` fixes the drawing's proportions and `width="100%"` (never a pixel width)
lets it fill its container, with `preserveAspectRatio` keeping it undistorted.

Colours are themed by the page stylesheet through CSS classes (`series-0`, `band`, `line`,
`threshold`, `highlight`, `part-equivalent`, …). Each classed element also carries fallback
presentation attributes so the SVG reads on its own (in the digest, or opened as a file):
a `color` attribute with the fill and stroke set to `currentColor`. A stylesheet can therefore
theme an element by setting `color` on its class (or set `fill`/`stroke` outright: any CSS rule
beats a presentation attribute). Text and axes use `currentColor` too, so they follow the
page's text colour, dark mode included. The fallbacks are the Okabe-Ito colour-blind-safe
palette.

Robustness: empty input renders a chart that says "no data" rather than raising; NaN and None
values are skipped; a single point and all-equal values are drawn without dividing by zero.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Real

from markupsafe import Markup, escape

__all__ = [
    "BAND_COLOUR",
    "BASELINE_COLOUR",
    "CHART_WIDTH",
    "HIGHLIGHT_COLOUR",
    "LINE_COLOUR",
    "LINE_PLOT",
    "PART_COLOURS",
    "SERIES_COLOURS",
    "THRESHOLD_COLOUR",
    "LinearScale",
    "PlotArea",
    "RatePoint",
    "bar_chart",
    "nice_ticks",
    "quantile_chart",
    "rate_chart",
    "rate_y_domain",
    "slugify",
    "stacked_bar",
]

# --- Fallback colours (Okabe-Ito) ------------------------------------------------------------

SERIES_COLOURS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#999999",  # grey
)
"""Fallback colour of `series-N`: `SERIES_COLOURS[N % len(SERIES_COLOURS)]`."""

LINE_COLOUR = "#0072B2"
"""Fallback colour of the rate chart's `line`, `point` and `band` (the band at low opacity)."""
BAND_COLOUR = LINE_COLOUR
BASELINE_COLOUR = "#777777"
"""Fallback colour of the rate chart's `baseline` line, `baseline-point` and `baseline-band`."""
THRESHOLD_COLOUR = "#D55E00"
"""Fallback colour of the rate chart's `threshold` line and `threshold-label`."""
BAR_COLOUR = "#0072B2"
HIGHLIGHT_COLOUR = "#D55E00"
"""Fallback colour of a bar with class `highlight` (other bars: `BAR_COLOUR`)."""

PART_COLOURS: Mapping[str, str] = {
    "equivalent": "#56B4E9",
    "candidate-better": "#009E73",
    "candidate-worse": "#D55E00",
    "different": "#E69F00",
    "not-judged": "#BBBBBB",
    "error": "#CC79A7",
}
"""Fallback colour of `part-<slug>` in the stacked bar; other slugs take `SERIES_COLOURS`."""

# --- Geometry (viewBox units) -----------------------------------------------------------------

CHART_WIDTH = 640.0
"""Width of every chart's viewBox; heights depend on the chart (rows of bars, of legend)."""


@dataclass(frozen=True, slots=True)
class PlotArea:
    """The rectangle of the viewBox that the data is drawn in."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


LINE_PLOT = PlotArea(left=64.0, top=40.0, width=552.0, height=200.0)
"""Plot area of `quantile_chart` and `rate_chart` (y grows downward: `bottom` is the axis)."""

_TITLE_Y = 22.0
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_CHAR_WIDTH = 0.6  # average glyph width as a share of the font size, for layout estimates
_LEGEND_FONT = 11.0
_LEGEND_ROW = 18.0
_X_INSET = 6.0  # keeps the rate chart's first and last points off the y axis
_EDGE = 4.0  # least distance between any text and the left or right side of the viewBox
_TICK_FONT = 11.0
_TICK_GAP = 6.0  # least space between two x tick labels


@dataclass(frozen=True, slots=True)
class LinearScale:
    """Maps the domain `lo..hi` onto `start..end` (viewBox units); a flat domain maps to the
    middle of the range instead of dividing by zero."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One bucket of a rate over time: the estimate and its interval (None when the bucket had
    no data) and the number of calls it was estimated from."""

    at: datetime
    estimate: float | None
    lower: float | None
    upper: float | None
    n: int


# --- Nice numbers ------------------------------------------------------------------------------


def _nice_number(x: float, *, round_: bool) -> float:
    """Heckbert's nice number: 1, 2, 5 or 10 times a power of ten, near `x` (> 0)."""
    exponent = math.floor(math.log10(x))
    fraction = x / 10.0**exponent
    if round_:
        nice = 1.0 if fraction < 1.5 else 2.0 if fraction < 3.0 else 5.0 if fraction < 7.0 else 10.0
    else:
        nice = (
            1.0 if fraction <= 1.0 else 2.0 if fraction <= 2.0 else 5.0 if fraction <= 5.0 else 10.0
        )
    return nice * 10.0**exponent


def _decimals(step: float) -> int:
    """Digits after the point needed to write multiples of `step` exactly."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering `lo..hi`, about `count` of them (Heckbert's "nice numbers",
    loose labelling: the first tick is at or below `lo`, the last at or above `hi`).

    `nice_ticks(0, 0.93, 5)` is `[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]`. Equal ends are widened (by 10%,
    or to 0..1 at zero) rather than dividing by zero; swapped ends are put in order.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"nice_ticks needs finite ends, got {lo!r} and {hi!r}")
    if lo > hi:
        lo, hi = hi, lo
    if lo == hi:
        if lo == 0:
            hi = 1.0
        else:
            pad = abs(lo) * 0.1
            lo, hi = lo - pad, hi + pad
    count = max(count, 2)
    span = _nice_number(hi - lo, round_=False)
    step = _nice_number(span / (count - 1), round_=True)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    digits = _decimals(step)
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


# --- Text and number formatting ----------------------------------------------------------------

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


# --- SVG assembly ------------------------------------------------------------------------------


def _svg(kind: str, title: str, desc: str, height: float, body: Sequence[str]) -> Markup:
    """The root element around `body`, with the title and description screen readers use.

    The ids are derived from the content, so the output is deterministic and two different
    charts on one page do not share ids.
    """
    content = "\n".join(body)
    digest = hashlib.sha256("\x00".join((kind, title, desc, content)).encode()).hexdigest()[:12]
    cid = f"chart-{digest}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'viewBox="0 0 {_f(CHART_WIDTH)} {_f(height)}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" '
        f'aria-labelledby="{cid}-title" aria-describedby="{cid}-desc" '
        f'font-family="{_esc(_FONT)}" font-size="12" fill="currentColor">'
    )
    parts = [
        head,
        f'<title id="{cid}-title">{_esc(title)}</title>',
        f'<desc id="{cid}-desc">{_esc(desc)}</desc>',
        f'<text class="chart-title" x="8.0" y="{_f(_TITLE_Y)}" font-size="14" '
        f'font-weight="600">{_esc(title)}</text>',
        content,
        "</svg>",
    ]
    return Markup("\n".join(parts))


def _no_data(kind: str, title: str, height: float = 120.0) -> Markup:
    body = [
        f'<text class="no-data" x="{_f(CHART_WIDTH / 2)}" y="{_f(height / 2 + 10)}" '
        f'text-anchor="middle" font-size="14" fill-opacity="0.6">no data</text>'
    ]
    return _svg(kind, title, f"{title}: no data.", height, body)


@dataclass(frozen=True, slots=True)
class _LegendItem:
    label: str
    swatch: str  # drawn around (0, 0), within (0..18, -6..6)
    full: str | None = None  # shown as a tooltip when the label was shortened


def _legend(items: Sequence[_LegendItem], top: float) -> tuple[list[str], float]:
    """Legend entries in rows from `top` (their vertical middle); returns them and the height
    used."""
    if not items:
        return [], 0.0
    out = ['<g class="legend">']
    x, row = 8.0, 0
    for item in items:
        width = 24.0 + _text_width(item.label, _LEGEND_FONT) + 16.0
        if x > 8.0 and x + width > CHART_WIDTH - 8.0:
            x, row = 8.0, row + 1
        y = top + row * _LEGEND_ROW
        tip = f"<title>{_esc(item.full)}</title>" if item.full else ""
        out.append(
            f'<g class="legend-item" transform="translate({_f(x)} {_f(y)})">{tip}{item.swatch}'
            f'<text x="24.0" y="4.0" font-size="{_f(_LEGEND_FONT)}">{_esc(item.label)}</text></g>'
        )
        x += width
    out.append("</g>")
    return out, (row + 1) * _LEGEND_ROW


def _line_swatch(cls: str, colour: str, *, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return (
        f'<line class="swatch {cls}" color="{colour}" x1="0.0" y1="0.0" x2="18.0" y2="0.0" '
        f'stroke="currentColor" stroke-width="2"{dash}/>'
    )


def _box_swatch(cls: str, colour: str, opacity: float = 1.0) -> str:
    fade = f' fill-opacity="{opacity:.2f}"' if opacity < 1 else ""
    return (
        f'<rect class="swatch {cls}" color="{colour}" x="0.0" y="-5.0" width="18.0" '
        f'height="10.0" fill="currentColor"{fade}/>'
    )


def _x_axis_frame(plot: PlotArea) -> list[str]:
    return [
        f'<line class="axis" x1="{_f(plot.left)}" y1="{_f(plot.bottom)}" x2="{_f(plot.right)}" '
        f'y2="{_f(plot.bottom)}" stroke="currentColor" stroke-opacity="0.6"/>',
    ]


def _y_axis_frame(plot: PlotArea) -> list[str]:
    return [
        f'<line class="axis" x1="{_f(plot.left)}" y1="{_f(plot.top)}" x2="{_f(plot.left)}" '
        f'y2="{_f(plot.bottom)}" stroke="currentColor" stroke-opacity="0.6"/>',
    ]


def _x_tick_position(x: float, label: str) -> tuple[float, str]:
    """Where a tick label under `x` goes, (x, text-anchor): centred on the tick, unless that would
    take it past a side of the viewBox; then it is anchored at the side's margin instead (`end`
    on the right, `start` on the left), so its real edge stays inside whatever the font's actual
    widths."""
    half = _text_width(label, _TICK_FONT) / 2
    if x + half > CHART_WIDTH - _EDGE:
        return CHART_WIDTH - _EDGE, "end"
    if x - half < _EDGE:
        return _EDGE, "start"
    return x, "middle"


def _shown_tick_labels(boxes: Sequence[_Box], keep: int) -> set[int]:
    """The indices of the tick labels to show: all of them if no two neighbours come closer than
    `_TICK_GAP`, else every k-th one counting from index `keep`, for the smallest k that
    spaces them out (the grid lines and tick marks all stay)."""
    for k in range(1, len(boxes) + 1):
        shown = [i for i in range(len(boxes)) if (i - keep) % k == 0]
        pairs = zip(shown, shown[1:], strict=False)
        if not any(boxes[a].overlaps(boxes[b], _TICK_GAP) for a, b in pairs):
            return set(shown)
    return set(range(len(boxes)))  # no labels at all: nothing to space out


def _grid_vertical(plot: PlotArea, xs: Sequence[tuple[float, str]], keep: int = 0) -> list[str]:
    """Vertical grid lines with tick labels under the plot, at (x, label); if labels would
    collide, only every k-th one is shown, always including the one at index `keep`."""
    out = ['<g class="grid x-grid">']
    for x, _ in xs:
        out.append(
            f'<line x1="{_f(x)}" y1="{_f(plot.top)}" x2="{_f(x)}" y2="{_f(plot.bottom)}" '
            f'stroke="currentColor" stroke-opacity="0.12"/>'
        )
    out.append("</g>")
    label_y = plot.bottom + 16
    positions = [_x_tick_position(x, label) for x, label in xs]
    shown = _shown_tick_labels(
        [
            _text_box(tx, label_y, label, _TICK_FONT, anchor)
            for (tx, anchor), (_, label) in zip(positions, xs, strict=True)
        ],
        keep,
    )
    out.append(f'<g class="ticks x-ticks" font-size="{_TICK_FONT:g}" text-anchor="middle">')
    for index, ((x, label), (tx, anchor)) in enumerate(zip(xs, positions, strict=True)):
        out.append(
            f'<line x1="{_f(x)}" y1="{_f(plot.bottom)}" x2="{_f(x)}" y2="{_f(plot.bottom + 4)}" '
            f'stroke="currentColor" stroke-opacity="0.6"/>'
        )
        if index in shown:
            side = "" if anchor == "middle" else f' text-anchor="{anchor}"'
            out[-1] += f'<text x="{_f(tx)}" y="{_f(label_y)}"{side}>{_esc(label)}</text>'
    out.append("</g>")
    return out


def _grid_horizontal(plot: PlotArea, ys: Sequence[tuple[float, str]]) -> list[str]:
    """Horizontal grid lines with tick labels left of the plot, at (y, label)."""
    out = ['<g class="grid y-grid">']
    for y, _ in ys:
        out.append(
            f'<line x1="{_f(plot.left)}" y1="{_f(y)}" x2="{_f(plot.right)}" y2="{_f(y)}" '
            f'stroke="currentColor" stroke-opacity="0.12"/>'
        )
    out.append("</g>")
    out.append('<g class="ticks y-ticks" font-size="11" text-anchor="end">')
    for y, label in ys:
        out.append(f'<text x="{_f(plot.left - 6)}" y="{_f(y + 4)}">{_esc(label)}</text>')
    out.append("</g>")
    return out


def _axis_labels(plot: PlotArea, x_label: str, y_label: str) -> list[str]:
    mid = (plot.top + plot.bottom) / 2
    return [
        f'<text class="axis-label" x="{_f((plot.left + plot.right) / 2)}" '
        f'y="{_f(plot.bottom + 34)}" text-anchor="middle" font-size="11">{_esc(x_label)}</text>',
        f'<text class="axis-label" x="14.0" y="{_f(mid)}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 14.0 {_f(mid)})">{_esc(y_label)}</text>',
    ]


def _path(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{_f(x)} {_f(y)}" for i, (x, y) in enumerate(points))


# --- 1. Quantile chart -------------------------------------------------------------------------

_MARKED_LEVELS: tuple[tuple[float, str], ...] = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
# p95 and p99 sit 4% of the plot height apart: their labels are nudged apart vertically.
_LABEL_NUDGE: Mapping[str, float] = {"p50": 0.0, "p95": 4.0, "p99": -3.0}
_MARKER_R = 3.5
_MARKER_FONT = 10.0
_LABEL_GAP = 6.0  # from a marker's centre to the near end of its label
_LABEL_ROW = 12.0  # the step between the rows a marker label may move to
_LABEL_ROWS = 3  # how many rows above and below its marker a label may move
_LABEL_CLEARANCE = 1.0  # least distance between a label and another label or a marker


@dataclass(frozen=True, slots=True)
class _Mark:
    """A marked quantile of one series: its marker at (cx, cy) and the text of its label."""

    series: int
    tag: str
    cx: float
    cy: float
    text: str


def _place_marker_labels(
    marks: Sequence[_Mark], bounds: _Box, avoid: Sequence[_Box]
) -> list[tuple[float, float, str]]:
    """Where each mark's label goes: (x, baseline y, text-anchor), in the order of `marks`.

    Each label sits beside its own marker, at the first of these spots whose estimated box (see
    `_text_box`) lies within `bounds` and keeps clear of every marker, of the labels placed
    before it and of `avoid`: level with its marker first (p95 nudged down and p99 up, as the two
    sit close), then a row further up or down, and so on. Within a row, even series try the
    left of their marker first and odd series the right, and when both sides are taken even
    series move up first and odd series down: so two close curves put their labels on opposite
    sides, or one above the other, rather than on top of each other. If no spot is clear (very
    crowded charts only), the label takes its first spot within `bounds`.
    """
    obstacles = [
        *avoid,
        *(
            _Box(m.cx - _MARKER_R, m.cy - _MARKER_R, m.cx + _MARKER_R, m.cy + _MARKER_R)
            for m in marks
        ),
    ]
    placed: list[tuple[float, float, str]] = []
    for mark in marks:
        even = mark.series % 2 == 0
        sides = ("end", "start") if even else ("start", "end")
        signs = (-1, 1) if even else (1, -1)
        rows = [0, *(sign * k for k in range(1, _LABEL_ROWS + 1) for sign in signs)]
        base = mark.cy + _MARKER_R + _LABEL_NUDGE[mark.tag]
        spots = [
            (
                mark.cx - _LABEL_GAP if side == "end" else mark.cx + _LABEL_GAP,
                base + row * _LABEL_ROW,
                side,
            )
            for row in rows
            for side in sides
        ]
        boxes = [_text_box(x, y, mark.text, _MARKER_FONT, anchor) for x, y, anchor in spots]
        inside = [i for i, box in enumerate(boxes) if box.within(bounds)]
        clear = [
            i for i in inside if not any(boxes[i].overlaps(o, _LABEL_CLEARANCE) for o in obstacles)
        ]
        chosen = clear[0] if clear else inside[0] if inside else 0
        obstacles.append(boxes[chosen])
        placed.append(spots[chosen])
    return placed


@dataclass(frozen=True, slots=True)
class _XAxis:
    scale: LinearScale
    log: bool
    ticks: tuple[tuple[float, str], ...]  # (value, label)

    def __call__(self, value: float) -> float:
        return self.scale(math.log10(value) if self.log else value)


def _value_axis(lo: float, hi: float, plot: PlotArea) -> _XAxis:
    """A linear axis over lo..hi, or a log one when the values span more than a factor 20."""
    if lo > 0 and hi / lo > 20:
        low_exp, high_exp = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        mults = (1, 2, 5) if high_exp - low_exp <= 3 else (1,)
        candidates = [m * 10.0**e for e in range(low_exp, high_exp + 1) for m in mults]
        start = max(c for c in candidates if c <= lo * (1 + 1e-9))
        end = min(c for c in candidates if c >= hi * (1 - 1e-9))
        ticks = tuple((c, _log_tick_label(c)) for c in candidates if start <= c <= end)
        scale = LinearScale(math.log10(start), math.log10(end), plot.left, plot.right)
        return _XAxis(scale, True, ticks)
    values = nice_ticks(lo, hi, 6)
    step = values[1] - values[0]
    ticks = tuple((v, _tick_label(v, step, percent=False)) for v in values)
    return _XAxis(LinearScale(values[0], values[-1], plot.left, plot.right), False, ticks)


def quantile_chart(
    series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, unit: str = "ms"
) -> Markup:
    """Latency distributions as empirical CDFs drawn from quantiles.

    Each series is a list of (quantile level in [0, 1], value) points; the x axis is the value
    in `unit` (log scale when the largest value is more than 20 times the smallest), the y axis
    the share of calls at or below it. p50, p95 and p99, where present, get a marker and a label.
    Series are drawn in groups with classes `series-0`, `series-1`, … in the mapping's order.
    """
    cleaned: list[tuple[str, list[tuple[float, float]]]] = []
    for name, raw in series.items():
        good: list[tuple[float, float]] = []
        for item in raw:
            if item is None or len(item) != 2:
                continue
            level, value = _number(item[0]), _number(item[1])
            if level is None or value is None or not 0.0 <= level <= 1.0:
                continue
            good.append((level, value))
        good.sort()
        cleaned.append((str(name), good))
    values = [v for _, pts in cleaned for _, v in pts]
    if not values:
        return _no_data("quantile", title)

    plot = LINE_PLOT
    x = _value_axis(min(values), max(values), plot)
    y_ticks = nice_ticks(0.0, 1.0, 5)
    y = LinearScale(y_ticks[0], y_ticks[-1], plot.bottom, plot.top)
    y_step = y_ticks[1] - y_ticks[0]
    suffix = f"{unit}, log scale" if x.log and unit else "log scale" if x.log else unit
    x_label = f"latency ({suffix})" if suffix else "latency"
    unit_sep = f" {unit}" if unit else ""

    body: list[str] = []
    body += _grid_horizontal(plot, [(y(t), _tick_label(t, y_step, percent=True)) for t in y_ticks])
    body += _grid_vertical(plot, [(x(v), label) for v, label in x.ticks])
    body += _x_axis_frame(plot) + _y_axis_frame(plot)
    body += _axis_labels(plot, x_label, "calls at or below (%)")

    marks = [
        _Mark(index, tag, x(v), y(q), f"{tag} {_fmt_num(v)}")
        for index, (_, pts) in enumerate(cleaned)
        for level, tag in _MARKED_LEVELS
        for q, v in pts
        if abs(q - level) < 1e-9
    ]
    title_box = _text_box(8.0, _TITLE_Y, title, 14.0, "start")
    label_bounds = _Box(plot.left, 0.0, CHART_WIDTH - _EDGE, plot.bottom)
    spots = iter(_place_marker_labels(marks, label_bounds, [title_box]))

    legend: list[_LegendItem] = []
    sentences: list[str] = []
    for index, (name, pts) in enumerate(cleaned):
        cls = f"series-{index}"
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        marked = [
            (tag, v) for level, tag in _MARKED_LEVELS for q, v in pts if abs(q - level) < 1e-9
        ]
        summary = ", ".join(f"{tag} {_fmt_num(v)}{unit_sep}" for tag, v in marked)
        short = _truncate(name, 40)
        label = f"{short} ({summary})" if summary else short if pts else f"{short} (no data)"
        legend.append(
            _LegendItem(label, _line_swatch(cls, colour), name if short != name else None)
        )
        if not pts:
            sentences.append(f"{name}: no data.")
            continue
        lo_v, hi_v = min(v for _, v in pts), max(v for _, v in pts)
        sentence = f"{name}: " + (f"{summary}; " if summary else "")
        sentence += (
            f"{len(pts)} quantiles from {_fmt_num(lo_v)}{unit_sep} to {_fmt_num(hi_v)}{unit_sep}."
        )
        sentences.append(sentence)

        coords = [(x(v), y(q)) for q, v in pts]
        group = [f'<g class="series {cls}" color="{colour}">', f"<title>{_esc(name)}</title>"]
        if len(coords) > 1:
            group.append(
                f'<path class="cdf" d="{_path(coords)}" fill="none" stroke="currentColor" '
                f'stroke-width="2" stroke-linejoin="round"/>'
            )
        else:
            cx, cy = coords[0]
            group.append(
                f'<circle class="point" cx="{_f(cx)}" cy="{_f(cy)}" r="3.0" fill="currentColor"/>'
            )
        for level, tag in _MARKED_LEVELS:
            for q, v in pts:
                if abs(q - level) >= 1e-9:
                    continue
                cx, cy = x(v), y(q)
                text = f"{tag} {_fmt_num(v)}"
                tip = f"{name} {tag}: {_fmt_num(v)}{unit_sep}"
                tx, ty, anchor = next(spots)  # the marks were listed in this same order
                group.append(
                    f'<circle class="marker" cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(_MARKER_R)}" '
                    f'fill="currentColor"><title>{_esc(tip)}</title></circle>'
                )
                group.append(
                    f'<text class="marker-label" x="{_f(tx)}" y="{_f(ty)}" '
                    f'text-anchor="{anchor}" font-size="{_MARKER_FONT:g}" fill="currentColor">'
                    f"{_esc(text)}</text>"
                )
        group.append("</g>")
        body += group

    legend_body, legend_height = _legend(legend, plot.bottom + 58)
    body += legend_body
    scale_note = ", log scale" if x.log else ""
    desc = (
        f"{title}. Share of calls at or below each latency{scale_note}, "
        f"{len(cleaned)} series. " + " ".join(sentences)
    )
    height = plot.bottom + 58 + legend_height
    return _svg("quantile", title, desc, height, body)


# --- 2. Rate chart -----------------------------------------------------------------------------

_TIME_STEPS: tuple[int, ...] = (
    60,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    28 * 86400,
)


def _utc(at: datetime) -> datetime:
    """`at` in UTC; a naive datetime is taken to be UTC already."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _time_ticks(t0: float, t1: float, max_ticks: int = 6) -> list[float]:
    span = t1 - t0
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks - 1), None)
    if step is None:
        step = _TIME_STEPS[-1] * math.ceil(span / (_TIME_STEPS[-1] * (max_ticks - 1)))
    first = math.ceil(t0 / step) * step
    ticks: list[float] = []
    t = float(first)
    while t <= t1 + 1e-6:
        ticks.append(t)
        t += step
    return ticks


def _rate_values(points: Sequence[RatePoint], baseline: Sequence[RatePoint] | None) -> list[float]:
    values: list[float] = []
    for p in [*points, *(baseline or ())]:
        for v in (p.estimate, p.lower, p.upper):
            number = _number(v)
            if number is not None:
                values.append(number)
    return values


def _rate_ticks(values: Sequence[float], threshold: float | None) -> list[float]:
    wanted = list(values)
    limit = _number(threshold)
    if limit is not None:
        wanted.append(limit)
    if not wanted:
        return nice_ticks(0.0, 1.0, 5)
    lo, hi = min(wanted), max(wanted)
    pad = (hi - lo) * 0.1 if hi > lo else max(abs(hi) * 0.1, 0.01)
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    if lo >= hi:  # everything at or beyond a bound of [0, 1]
        lo, hi = (0.0, 1.0) if hi <= 0 or lo >= 1 else (lo, hi)
    ticks = [t for t in nice_ticks(lo, hi, 5) if 0.0 <= t <= 1.0]
    return ticks if len(ticks) >= 2 else [0.0, 1.0]


def rate_y_domain(
    points: Sequence[RatePoint],
    *,
    threshold: float | None = None,
    baseline: Sequence[RatePoint] | None = None,
) -> tuple[float, float]:
    """The y range `rate_chart` draws for these arguments: the data and the threshold with some
    padding, widened to nice ticks, within [0, 1]. `LinearScale(lo, hi, LINE_PLOT.bottom,
    LINE_PLOT.top)` then gives the y coordinate of any value."""
    ticks = _rate_ticks(_rate_values(points, baseline), threshold)
    return ticks[0], ticks[-1]


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Index ranges [start, end) of the consecutive True values."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _rate_series(
    pts: Sequence[RatePoint],
    x: LinearScale,
    y: LinearScale,
    *,
    kind: str,
    label: str,
    percent: bool,
) -> list[str]:
    """Band, line segments and points of one rate series; `kind` is "rate" or "baseline"."""
    primary = kind == "rate"
    colour = LINE_COLOUR if primary else BASELINE_COLOUR
    band_cls = "band" if primary else "band baseline-band"
    line_cls = "line" if primary else "baseline"
    point_cls = "point" if primary else "point baseline-point"
    opacity = "0.18" if primary else "0.12"
    dash = "" if primary else ' stroke-dasharray="6 4"'

    def ypos(v: float) -> float:
        return y(min(max(v, y.lo), y.hi))

    times = [x(_utc(p.at).timestamp()) for p in pts]
    estimates = [_number(p.estimate) for p in pts]
    lowers = [_number(p.lower) for p in pts]
    uppers = [_number(p.upper) for p in pts]
    out = [f'<g class="{kind}-series">']

    for start, end in _runs(
        [lo is not None and hi is not None for lo, hi in zip(lowers, uppers, strict=True)]
    ):
        top = [(times[i], ypos(uppers[i] or 0.0)) for i in range(start, end)]
        bottom = [(times[i], ypos(lowers[i] or 0.0)) for i in range(start, end)]
        if len(top) == 1:  # a lone interval: a narrow box, so it still shows
            (tx, ty), (_, by) = top[0], bottom[0]
            top = [(tx - 3, ty), (tx + 3, ty)]
            bottom = [(tx - 3, by), (tx + 3, by)]
        ring = top + bottom[::-1]
        out.append(
            f'<polygon class="{band_cls}" color="{colour}" fill="currentColor" '
            f'fill-opacity="{opacity}" points="{" ".join(f"{_f(a)},{_f(b)}" for a, b in ring)}"/>'
        )

    for start, end in _runs([e is not None for e in estimates]):
        if end - start < 2:
            continue  # a lone estimate is only its point
        coords = [(times[i], ypos(estimates[i] or 0.0)) for i in range(start, end)]
        out.append(
            f'<path class="{line_cls}" color="{colour}" d="{_path(coords)}" fill="none" '
            f'stroke="currentColor" stroke-width="2" stroke-linejoin="round"{dash}/>'
        )

    for p, cx, est, lo, hi in zip(pts, times, estimates, lowers, uppers, strict=True):
        if est is None:
            continue
        when = _utc(p.at).strftime("%Y-%m-%d %H:%M")
        interval = (
            f"interval {_fmt_rate(lo, percent)}–{_fmt_rate(hi, percent)}"
            if lo is not None and hi is not None
            else "no interval"
        )
        prefix = "" if primary else f"{label}, "
        tip = f"{prefix}{when} UTC: {_fmt_rate(est, percent)} ({interval}), n={p.n:,}"
        out.append(
            f'<circle class="{point_cls}" color="{colour}" cx="{_f(cx)}" cy="{_f(ypos(est))}" '
            f'r="{"3.0" if primary else "2.5"}" fill="currentColor"><title>{_esc(tip)}</title>'
            f"</circle>"
        )
    out.append("</g>")
    return out


def _rate_sentence(pts: Sequence[RatePoint], percent: bool) -> str:
    known = [(p, e) for p in pts if (e := _number(p.estimate)) is not None]
    if not known:
        return "no data"
    last, est = known[-1]
    lo, hi = _number(last.lower), _number(last.upper)
    interval = (
        f", interval {_fmt_rate(lo, percent)} to {_fmt_rate(hi, percent)}"
        if lo is not None and hi is not None
        else ""
    )
    estimates = [e for _, e in known]
    text = (
        f"latest {_fmt_rate(est, percent)} at {_utc(last.at):%Y-%m-%d %H:%M} UTC"
        f"{interval}, n={last.n:,}; lowest {_fmt_rate(min(estimates), percent)}, "
        f"highest {_fmt_rate(max(estimates), percent)}"
    )
    missing = len(pts) - len(known)
    if missing:
        text += f"; {missing} of {len(pts)} points without data"
    return text


def rate_chart(
    points: Sequence[RatePoint],
    *,
    title: str,
    threshold: float | None = None,
    threshold_label: str = "",
    baseline: Sequence[RatePoint] | None = None,
    baseline_label: str = "noise arm",
    percent: bool = True,
) -> Markup:
    """A rate over time: its interval as a shaded band (`band`), the estimate as a line with
    points (`line`, `point`), an optional baseline dashed with its own band (`baseline`,
    `baseline-band`, `baseline-point`) and the trigger threshold as a dashed horizontal line
    (`threshold`, labelled `threshold-label`).

    A point whose estimate is None breaks the line. Times are shown in UTC. The y axis is zoomed
    to the data and the threshold (see `rate_y_domain`), within [0, 1], in percent if `percent`.
    """
    pts = sorted(points, key=lambda p: _utc(p.at))
    base = sorted(baseline or (), key=lambda p: _utc(p.at))
    values = _rate_values(pts, base)
    if not values:
        return _no_data("rate", title)

    plot = LINE_PLOT
    stamps = [_utc(p.at).timestamp() for p in [*pts, *base]]
    t0, t1 = min(stamps), max(stamps)
    if t1 == t0:
        t0, t1 = t0 - 1800, t1 + 1800
    x = LinearScale(t0, t1, plot.left + _X_INSET, plot.right - _X_INSET)
    y_ticks = _rate_ticks(values, threshold)
    y = LinearScale(y_ticks[0], y_ticks[-1], plot.bottom, plot.top)
    y_step = y_ticks[1] - y_ticks[0]
    time_format = "%H:%M" if t1 - t0 < 86400 else "%m-%d %H:%M"
    x_ticks = [
        (x(t), datetime.fromtimestamp(t, tz=UTC).strftime(time_format)) for t in _time_ticks(t0, t1)
    ]

    body: list[str] = []
    body += _grid_horizontal(
        plot, [(y(t), _tick_label(t, y_step, percent=percent)) for t in y_ticks]
    )
    body += _grid_vertical(plot, x_ticks)
    body += _x_axis_frame(plot) + _y_axis_frame(plot)
    body += _axis_labels(plot, "time (UTC)", "rate (%)" if percent else "rate")

    legend = [
        _LegendItem(
            "rate (shaded: interval)",
            _box_swatch("band", LINE_COLOUR, 0.18) + _line_swatch("line", LINE_COLOUR),
        )
    ]
    if base:
        body += _rate_series(base, x, y, kind="baseline", label=baseline_label, percent=percent)
        legend.append(
            _LegendItem(
                baseline_label,
                _box_swatch("baseline-band", BASELINE_COLOUR, 0.12)
                + _line_swatch("baseline", BASELINE_COLOUR, dashed=True),
            )
        )
    body += _rate_series(pts, x, y, kind="rate", label="", percent=percent)

    limit = _number(threshold)
    threshold_text = ""
    if limit is not None:
        shown = _fmt_rate(limit, percent)
        text = f"{threshold_label} {shown}" if threshold_label else f"threshold {shown}"
        threshold_text = f" Threshold: {text}."
        if y.lo <= limit <= y.hi:
            ty = y(limit)
            body.append(
                f'<line class="threshold" color="{THRESHOLD_COLOUR}" x1="{_f(plot.left)}" '
                f'y1="{_f(ty)}" x2="{_f(plot.right)}" y2="{_f(ty)}" stroke="currentColor" '
                f'stroke-width="1.5" stroke-dasharray="6 4"/>'
            )
            label_y = ty - 5 if ty - 5 > plot.top + 10 else ty + 14
            body.append(
                f'<text class="threshold-label" color="{THRESHOLD_COLOUR}" '
                f'x="{_f(plot.right - 4)}" y="{_f(label_y)}" text-anchor="end" font-size="11" '
                f'fill="currentColor">{_esc(text)}</text>'
            )
        legend.append(
            _LegendItem(
                threshold_label or "threshold",
                _line_swatch("threshold", THRESHOLD_COLOUR, dashed=True),
            )
        )

    legend_body, legend_height = _legend(legend, plot.bottom + 58)
    body += legend_body
    start = datetime.fromtimestamp(min(stamps), tz=UTC)
    end = datetime.fromtimestamp(max(stamps), tz=UTC)
    desc = (
        f"{title}. Rate over time from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, "
        f"{len(pts)} points: {_rate_sentence(pts, percent)}.{threshold_text}"
    )
    if base:
        desc += f" {baseline_label}: {_rate_sentence(base, percent)}."
    return _svg("rate", title, desc, plot.bottom + 58 + legend_height, body)


# --- 3. Bar chart ------------------------------------------------------------------------------

_BAR_TOP = 40.0
_BAR_ROW = 26.0
_BAR_THICKNESS = 16.0
_BAR_LABEL_RIGHT = 184.0
_BAR_FONT = 12.0
_BAR_VALUE_FONT = 11.0
# As many characters as the estimate fits between the viewBox's left margin and the labels' end.
_BAR_LABEL_CHARS = int((_BAR_LABEL_RIGHT - _EDGE) / (_BAR_FONT * _CHAR_WIDTH))
_BAR_VALUE_ROOM = 64.0  # right of the plot, at least; more if a value label needs it
_BAR_VALUE_GAP = 4.0  # between a bar's end and its value label
_BAR_PLOT_GAP = 8.0  # between the label column and the plot, at least


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    percent: bool = True,
    highlight: str | None = None,
) -> Markup:
    """Horizontal bars in the order given, each with its value at its end; the bar named
    `highlight` gets the class `highlight` (the others `bar`). Long labels are shortened with an
    ellipsis in the drawing and kept whole in the row's `<title>`. Values that are None or NaN
    are left out."""
    rows: list[tuple[str, float]] = []
    for item in bars:
        if item is None or len(item) != 2:
            continue
        value = _number(item[1])
        if value is not None:
            rows.append((str(item[0]), value))
    if not rows:
        return _no_data("bar", title)

    lo = min(0.0, *(v for _, v in rows))
    hi = max(0.0, *(v for _, v in rows))
    ticks = nice_ticks(lo, hi, 5)
    step = ticks[1] - ticks[0]

    def show(v: float) -> str:
        return _fmt_pct(v) if percent else _fmt_num(v)

    # Any bar may reach a side of the plot, so each side keeps room for the widest value label
    # drawn beyond it: right of the plot inside the viewBox, left of it clear of the label column.
    def room(values: Sequence[float], margin: float) -> float:
        widths = [_text_width(show(v), _BAR_VALUE_FONT) for v in values]
        return max((_BAR_VALUE_GAP + w + margin for w in widths), default=0.0)

    left_room = max(_BAR_PLOT_GAP, room([v for _, v in rows if v < 0], _BAR_VALUE_GAP))
    right_room = max(_BAR_VALUE_ROOM, room([v for _, v in rows if v >= 0], _EDGE))
    plot = PlotArea(
        left=_BAR_LABEL_RIGHT + left_room,
        top=_BAR_TOP,
        width=CHART_WIDTH - _BAR_LABEL_RIGHT - left_room - right_room,
        height=len(rows) * _BAR_ROW,
    )
    x = LinearScale(ticks[0], ticks[-1], plot.left, plot.right)

    body: list[str] = []
    zero_tick = min(range(len(ticks)), key=lambda i: abs(ticks[i]))  # 0 is always a tick
    body += _grid_vertical(
        plot, [(x(t), _tick_label(t, step, percent=percent)) for t in ticks], keep=zero_tick
    )
    body += _x_axis_frame(plot)
    body.append('<g class="bars">')
    zero = x(0.0)
    for index, (name, value) in enumerate(rows):
        cls = "bar highlight" if highlight is not None and name == highlight else "bar"
        colour = HIGHLIGHT_COLOUR if cls != "bar" else BAR_COLOUR
        row_top = plot.top + index * _BAR_ROW
        mid = row_top + _BAR_ROW / 2
        end = x(value)
        left, width = min(zero, end), abs(end - zero)
        if value >= 0:
            vx, anchor = max(end, zero) + _BAR_VALUE_GAP, "start"
        else:
            vx, anchor = min(end, zero) - _BAR_VALUE_GAP, "end"
        body.append(
            f'<g class="bar-row"><title>{_esc(name)}: {_esc(show(value))}</title>'
            f'<text class="bar-label" x="{_f(_BAR_LABEL_RIGHT)}" y="{_f(mid + 4)}" '
            f'text-anchor="end">{_esc(_truncate(name, _BAR_LABEL_CHARS))}</text>'
            f'<rect class="{cls}" color="{colour}" x="{_f(left)}" '
            f'y="{_f(mid - _BAR_THICKNESS / 2)}" width="{_f(width)}" '
            f'height="{_f(_BAR_THICKNESS)}" fill="currentColor"/>'
            f'<text class="bar-value" x="{_f(vx)}" y="{_f(mid + 4)}" text-anchor="{anchor}" '
            f'font-size="{_BAR_VALUE_FONT:g}">{_esc(show(value))}</text></g>'
        )
    body.append("</g>")
    if ticks[0] < 0:
        body.append(
            f'<line class="axis zero" x1="{_f(zero)}" y1="{_f(plot.top)}" x2="{_f(zero)}" '
            f'y2="{_f(plot.bottom)}" stroke="currentColor" stroke-opacity="0.6"/>'
        )

    legend = [_LegendItem("share of calls" if percent else "value", _box_swatch("bar", BAR_COLOUR))]
    if highlight is not None and any(name == highlight for name, _ in rows):
        short = _truncate(highlight, 40)
        legend.append(
            _LegendItem(
                f"highlighted: {short}",
                _box_swatch("highlight", HIGHLIGHT_COLOUR),
                highlight if short != highlight else None,
            )
        )
    legend_top = plot.bottom + 40
    legend_body, legend_height = _legend(legend, legend_top)
    body += legend_body

    listing = "; ".join(f"{name} {show(value)}" for name, value in rows)
    skipped = len(bars) - len(rows)
    desc = f"{title}. {len(rows)} bars: {listing}."
    if highlight is not None and any(name == highlight for name, _ in rows):
        desc += f" Highlighted: {highlight}."
    if skipped:
        desc += f" {skipped} without a value left out."
    return _svg("bar", title, desc, legend_top + legend_height, body)


# --- 4. Stacked bar ----------------------------------------------------------------------------

_STACK_PLOT = PlotArea(left=16.0, top=40.0, width=CHART_WIDTH - 32.0, height=28.0)
_STACK_COLUMNS = 3
_STACK_LABEL_CHARS = 24


def stacked_bar(parts: Sequence[tuple[str, float]], *, title: str) -> Markup:
    """One full-width bar split into the shares of a mix, segments with classes
    `part part-<slug>` (see `slugify`), and a legend with every part's percentage. Parts of
    size zero (or negative) are left out of the bar but kept in the legend at 0%; parts that are
    None or NaN are left out."""
    rows: list[tuple[str, float]] = []
    for item in parts:
        if item is None or len(item) != 2:
            continue
        value = _number(item[1])
        if value is not None:
            rows.append((str(item[0]), max(0.0, value)))
    total = sum(v for _, v in rows)
    if total <= 0:
        return _no_data("stacked", title)

    plot = _STACK_PLOT
    x = LinearScale(0.0, 1.0, plot.left, plot.right)
    ticks = nice_ticks(0.0, 1.0, 6)
    step = ticks[1] - ticks[0]
    body: list[str] = []
    body += _grid_vertical(plot, [(x(t), _tick_label(t, step, percent=True)) for t in ticks])

    def colour_of(index: int, slug: str) -> str:
        return PART_COLOURS.get(slug, SERIES_COLOURS[index % len(SERIES_COLOURS)])

    body.append('<g class="stack">')
    acc = 0.0
    for index, (name, value) in enumerate(rows):
        if value <= 0:
            continue
        share = value / total
        left, right = x(acc), x(acc + share)
        acc += share
        slug = slugify(name)
        body.append(
            f'<rect class="part part-{slug}" color="{colour_of(index, slug)}" x="{_f(left)}" '
            f'y="{_f(plot.top)}" width="{_f(right - left)}" height="{_f(plot.height)}" '
            f'fill="currentColor"><title>{_esc(name)}: {_fmt_pct(share)} '
            f"({_esc(_fmt_num(value))})</title></rect>"
        )
    body.append("</g>")

    legend_top = plot.bottom + 40
    column_width = (CHART_WIDTH - 16) / _STACK_COLUMNS
    body.append('<g class="legend">')
    for index, (name, value) in enumerate(rows):
        slug = slugify(name)
        lx = 8 + (index % _STACK_COLUMNS) * column_width
        ly = legend_top + (index // _STACK_COLUMNS) * _LEGEND_ROW
        short = _truncate(name, _STACK_LABEL_CHARS)
        body.append(
            f'<g class="legend-item" transform="translate({_f(lx)} {_f(ly)})">'
            f"<title>{_esc(name)}: {_fmt_pct(value / total)}</title>"
            f"{_box_swatch(f'part part-{slug}', colour_of(index, slug))}"
            f'<text x="24.0" y="4.0" font-size="{_f(_LEGEND_FONT)}">{_esc(short)} '
            f'<tspan font-weight="600">{_fmt_pct(value / total)}</tspan></text></g>'
        )
    body.append("</g>")
    legend_rows = math.ceil(len(rows) / _STACK_COLUMNS)

    listing = "; ".join(f"{name} {_fmt_pct(value / total)}" for name, value in rows)
    desc = f"{title}. Mix of {_fmt_num(total)} in total: {listing}."
    return _svg("stacked", title, desc, legend_top + legend_rows * _LEGEND_ROW, body)
