"""The bar charts: `bar_chart`, horizontal bars in the order given with each value at its bar's
end and one bar optionally highlighted, its plot narrowed so that every value label fits; and
`stacked_bar`, one full-width bar split into the shares of a mix (segments classed by the part's
slug) with a legend giving every part's percentage."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

from dashboards.web.charts.frame import (
    _EDGE,
    _LEGEND_FONT,
    _LEGEND_ROW,
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
    nice_ticks,
)
from dashboards.web.charts.palette import (
    BAR_COLOUR,
    HIGHLIGHT_COLOUR,
    PART_COLOURS,
    SERIES_COLOURS,
)
from dashboards.web.charts.text import (
    _CHAR_WIDTH,
    _esc,
    _f,
    _fmt_num,
    _fmt_pct,
    _number,
    _text_width,
    _tick_label,
    _truncate,
    slugify,
)

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
