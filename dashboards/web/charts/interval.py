"""The interval chart: one row per group (a segment, say), its mean as a dot on a 0–1 axis with
its confidence interval as a line through it, and reference bands drawn behind every row (the
embedding verdict's same-family and cross-family points), each band named in the legend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from dashboards.web.charts.frame import (
    _EDGE,
    CHART_WIDTH,
    LinearScale,
    PlotArea,
    _box_swatch,
    _grid_vertical,
    _legend,
    _LegendItem,
    _no_data,
    _svg,
    _x_axis_frame,
)
from dashboards.web.charts.palette import BAR_COLOUR, SERIES_COLOURS
from dashboards.web.charts.text import _CHAR_WIDTH, _esc, _f, _number, _tick_label, _truncate

_TOP = 40.0
_ROW = 26.0
_LABEL_RIGHT = 184.0
_FONT = 12.0
_LABEL_CHARS = int((_LABEL_RIGHT - _EDGE) / (_FONT * _CHAR_WIDTH))
_VALUE_ROOM = 150.0  # right of the plot: "0.874 (0.865–0.882)"
_TICKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True, slots=True)
class IntervalRow:
    label: str
    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True, slots=True)
class Band:
    """A reference range drawn behind the rows (`low == high`: a line)."""

    label: str
    low: float
    high: float


def interval_chart(
    rows: Sequence[IntervalRow], *, title: str, bands: Sequence[Band] = ()
) -> Markup:
    """Each row's mean and interval on a 0–1 axis, the bands behind them."""
    shown = [r for r in rows if all(_number(v) is not None for v in (r.mean, r.low, r.high))]
    if not shown:
        return _no_data("interval", title)
    plot = PlotArea(
        left=_LABEL_RIGHT + 12.0,
        top=_TOP,
        width=CHART_WIDTH - _LABEL_RIGHT - 12.0 - _VALUE_ROOM,
        height=len(shown) * _ROW,
    )
    x = LinearScale(0.0, 1.0, plot.left, plot.right)
    body: list[str] = []
    legend: list[_LegendItem] = []
    for index, band in enumerate(bands):
        colour = SERIES_COLOURS[(index + 1) % len(SERIES_COLOURS)]
        left, right = x(min(band.low, band.high)), x(max(band.low, band.high))
        body.append(
            f'<rect class="reference-band reference-band-{index}" color="{colour}"'
            f' x="{_f(left)}" y="{_f(plot.top)}"'
            f' width="{_f(max(right - left, 2.0))}" height="{_f(plot.height)}"'
            f' fill="currentColor" fill-opacity="0.18"><title>{_esc(band.label)}</title></rect>'
        )
        legend.append(_LegendItem(band.label, _box_swatch(f"reference-band-{index}", colour, 0.35)))
    body += _grid_vertical(plot, [(x(t), _tick_label(t, 0.2, percent=False)) for t in _TICKS])
    body += _x_axis_frame(plot)
    body.append('<g class="intervals">')
    for index, row in enumerate(shown):
        mid = plot.top + index * _ROW + _ROW / 2
        said = f"{row.mean:.3f} ({row.low:.3f}–{row.high:.3f})"
        body.append(
            f'<g class="interval-row"><title>{_esc(row.label)}: {_esc(said)},'
            f" {row.n} queries</title>"
            f'<text class="interval-label" x="{_f(_LABEL_RIGHT)}" y="{_f(mid + 4)}"'
            f' text-anchor="end">{_esc(_truncate(row.label, _LABEL_CHARS))}</text>'
            f'<line class="interval" color="{BAR_COLOUR}" x1="{_f(x(row.low))}" y1="{_f(mid)}"'
            f' x2="{_f(x(row.high))}" y2="{_f(mid)}" stroke="currentColor" stroke-width="3"/>'
            f'<circle class="point" color="{BAR_COLOUR}" cx="{_f(x(row.mean))}" cy="{_f(mid)}"'
            f' r="5" fill="currentColor"/>'
            f'<text class="interval-value" x="{_f(plot.right + 8)}" y="{_f(mid + 4)}"'
            f' font-size="11">{_esc(said)}</text></g>'
        )
    body.append("</g>")
    legend_top = plot.bottom + 40
    legend_body, legend_height = _legend(legend, legend_top) if legend else ([], 0.0)
    body += legend_body
    listing = "; ".join(
        f"{r.label} {r.mean:.3f} (95% interval {r.low:.3f} to {r.high:.3f}, {r.n} queries)"
        for r in shown
    )
    references = "".join(f" {b.label}: {b.low:.2f} to {b.high:.2f}." for b in bands)
    desc = f"{title}. {listing}.{references}"
    return _svg("interval", title, desc, legend_top + legend_height, body)
