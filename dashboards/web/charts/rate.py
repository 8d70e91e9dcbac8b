"""The rate chart: a rate over time (`RatePoint` buckets) as a line with points and its interval
as a shaded band, an optional baseline arm dashed with its own band, and the trigger threshold as
a dashed horizontal line; times in UTC on a time axis of round steps, and a y axis zoomed to the
data and the threshold within [0, 1] (`rate_y_domain` gives that range to callers)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from dashboards.web.charts.frame import (
    LINE_PLOT,
    LinearScale,
    _axis_labels,
    _box_swatch,
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
from dashboards.web.charts.palette import BASELINE_COLOUR, LINE_COLOUR, THRESHOLD_COLOUR
from dashboards.web.charts.text import _esc, _f, _fmt_rate, _number, _tick_label

_X_INSET = 6.0  # keeps the rate chart's first and last points off the y axis


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One bucket of a rate over time: the estimate and its interval (None when the bucket had
    no data) and the number of calls it was estimated from."""

    at: datetime
    estimate: float | None
    lower: float | None
    upper: float | None
    n: int


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
