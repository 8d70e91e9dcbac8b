"""The quantile chart: latency distributions as empirical CDFs drawn from quantiles, one series
per arm, on a linear or (for a wide range) log value axis, with p50, p95 and p99 marked and
labelled; the labels of close curves are placed beside their own markers so that they keep clear of
each other, of every marker and of the title."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from dashboards.web.charts.frame import (
    _EDGE,
    _TITLE_Y,
    CHART_WIDTH,
    LINE_PLOT,
    LinearScale,
    PlotArea,
    _axis_labels,
    _grid_horizontal,
    _grid_vertical,
    _legend,
    _LegendItem,
    _line_swatch,
    _no_data,
    _path,
    _svg,
    _x_axis_frame,
    _y_axis_frame,
    nice_ticks,
)
from dashboards.web.charts.palette import SERIES_COLOURS
from dashboards.web.charts.text import (
    _Box,
    _esc,
    _f,
    _fmt_num,
    _log_tick_label,
    _number,
    _text_box,
    _tick_label,
    _truncate,
)

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
