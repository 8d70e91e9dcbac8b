"""The frame every chart is drawn in: the viewBox geometry (`CHART_WIDTH`, `PlotArea`,
`LINE_PLOT`), `LinearScale` and Heckbert's `nice_ticks`, the root `<svg>` with its title and
description (ids derived from the content, so the output is deterministic), the "no data" chart,
the legend and its swatches, the axes, the grid lines and their tick labels (kept inside the
viewBox and thinned out when they would collide), the axis labels and the path of a polyline."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from dashboards.web.charts.text import _Box, _decimals, _esc, _f, _text_box, _text_width

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
_LEGEND_FONT = 11.0
_LEGEND_ROW = 18.0
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
