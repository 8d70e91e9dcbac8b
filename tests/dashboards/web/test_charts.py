"""The server-side SVG charts: well-formed, accessible, escaped, deterministic, and drawn where
the numbers say (the threshold line, the line broken at a gap, the log scale)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from markupsafe import Markup

from dashboards.web.charts import (
    CHART_WIDTH,
    LINE_PLOT,
    LinearScale,
    RatePoint,
    bar_chart,
    nice_ticks,
    quantile_chart,
    rate_chart,
    rate_y_domain,
    slugify,
    stacked_bar,
)
from dashboards.web.charts.text import _text_width as text_width  # the layout's own estimate

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script>"
T0 = datetime(2026, 5, 1, tzinfo=UTC)
LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def parse(chart: Markup) -> ET.Element:
    assert isinstance(chart, Markup)
    return ET.fromstring(str(chart))


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def find(root: ET.Element, tag: str, cls: str, *, exclude: str = "swatch") -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if cls in classes(e) and exclude not in classes(e)]


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(SVG + "text")]


def hourly(estimates: list[float | None], width: float = 0.01) -> list[RatePoint]:
    return [
        RatePoint(
            at=T0 + timedelta(hours=i),
            estimate=e,
            lower=None if e is None else max(0.0, e - width),
            upper=None if e is None else min(1.0, e + width),
            n=1000 + i,
        )
        for i, e in enumerate(estimates)
    ]


def cdf(lo: float, hi: float) -> list[tuple[float, float]]:
    return [(q, lo + (hi - lo) * q**2) for q in LEVELS]


CHARTS: dict[str, Callable[[], Markup]] = {
    "quantile": lambda: quantile_chart(
        {"primary": cdf(100, 900), "candidate (gpt-x)": cdf(120, 1200)}, title="Latency"
    ),
    "rate": lambda: rate_chart(
        hourly([0.02, 0.03, None, 0.04]),
        title="Worse rate",
        threshold=0.05,
        threshold_label="rollback",
        baseline=hourly([0.01, 0.01, 0.02, 0.01]),
    ),
    "bar": lambda: bar_chart([("refusal", 0.12), ("fence", 0.03)], title="Drift"),
    "stacked": lambda: stacked_bar([("equivalent", 70.0), ("different", 30.0)], title="Mix"),
    "empty": lambda: quantile_chart({}, title="Nothing"),
}


def numbers_in(element: ET.Element) -> Iterator[float]:
    for name in ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height"):
        if (value := element.get(name)) is not None and value != "100%":
            yield float(value)
    for name in ("d", "points"):
        if (value := element.get(name)) is not None:
            yield from (float(n) for n in re.findall(r"-?[0-9.]+(?:e-?[0-9]+)?", value))


Box = tuple[float, float, float, float]  # left, top, right, bottom (y grows downward)


def text_box(text: ET.Element, font_size: float) -> Box:
    """The estimated box of a `<text>`: as wide as the charts' own estimate says, placed by its
    `text-anchor` (`middle` when inherited from a group), from 0.8 font sizes above the baseline
    to 0.2 below it."""
    x, y = float(text.get("x", "nan")), float(text.get("y", "nan"))
    width = text_width("".join(text.itertext()), font_size)
    anchor = text.get("text-anchor", "middle")
    left = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
    return (left, y - 0.8 * font_size, left + width, y + 0.2 * font_size)


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def x_tick_boxes(root: ET.Element) -> list[Box]:
    (group,) = [g for g in root.iter(SVG + "g") if "x-ticks" in classes(g)]
    return [text_box(t, float(group.get("font-size", "nan"))) for t in group.iter(SVG + "text")]


def assert_x_ticks_fit(root: ET.Element) -> None:
    """Every x tick label lies within the viewBox's width, and no two of them overlap."""
    boxes = x_tick_boxes(root)
    assert boxes
    for box in boxes:
        assert 0 <= box[0] and box[2] <= CHART_WIDTH, box
    for a, b in zip(boxes, boxes[1:], strict=False):
        assert not overlap(a, b), (a, b)


def assert_well_drawn(root: ET.Element) -> None:
    """Every coordinate is a finite number: nothing NaN, nothing divided by zero."""
    for element in root.iter():
        for number in numbers_in(element):
            assert math.isfinite(number), ET.tostring(element)


# --- nice_ticks ---------------------------------------------------------------------------------


def test_nice_ticks_rounds_to_nice_steps() -> None:
    assert nice_ticks(0, 0.93, 5) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(0, 0.93, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]  # no 0.6000000000000001
    assert nice_ticks(0, 100, 5) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(120, 900, 6) == [0, 200, 400, 600, 800, 1000]
    assert nice_ticks(0.013, 0.047, 5) == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])


@pytest.mark.parametrize(
    ("lo", "hi"), [(0, 0.93), (0.013, 0.047), (-3.0, 10.0), (5.0, 5.0), (0.0, 0.0), (9, 1)]
)
def test_nice_ticks_cover_the_range_evenly(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi, 5)
    assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi)
    assert ticks[-1] > ticks[0]
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in (1.0, 2.0, 5.0)


def test_nice_ticks_rejects_non_finite_ends() -> None:
    with pytest.raises(ValueError):
        nice_ticks(0.0, math.nan, 5)


# --- every chart --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CHARTS))
def test_every_chart_is_an_accessible_responsive_svg(kind: str) -> None:
    root = parse(CHARTS[kind]())
    assert root.tag == SVG + "svg"
    assert "chart" in classes(root)
    assert re.fullmatch(r"0 0 [0-9.]+ [0-9.]+", root.get("viewBox", ""))
    assert root.get("preserveAspectRatio")
    assert root.get("width") in (None, "100%")
    assert root.get("height") is None
    assert root.get("role") == "img"
    title = root.find(SVG + "title")
    desc = root.find(SVG + "desc")
    assert title is not None and desc is not None
    assert root.get("aria-labelledby") == title.get("id")
    assert root.get("aria-describedby") == desc.get("id")
    assert title.text and desc.text and len(desc.text) > len(title.text)
    assert_well_drawn(root)


@pytest.mark.parametrize("kind", sorted(CHARTS))
def test_same_input_same_bytes(kind: str) -> None:
    assert str(CHARTS[kind]()) == str(CHARTS[kind]())


def test_two_charts_on_one_page_do_not_share_ids() -> None:
    one = parse(bar_chart([("a", 0.1)], title="One")).find(SVG + "title")
    two = parse(bar_chart([("a", 0.2)], title="Two")).find(SVG + "title")
    assert one is not None and two is not None
    assert one.get("id") != two.get("id")


def test_every_text_is_escaped() -> None:
    charts = [
        quantile_chart({EVIL: cdf(100, 900)}, title=EVIL, unit=EVIL),
        rate_chart(
            hourly([0.02, 0.03]),
            title=EVIL,
            threshold=0.05,
            threshold_label=EVIL,
            baseline=hourly([0.01, 0.01]),
            baseline_label=EVIL,
        ),
        bar_chart([(EVIL, 0.5), ("b", 0.2)], title=EVIL, highlight=EVIL),
        stacked_bar([(EVIL, 1.0), ("b", 1.0)], title=EVIL),
        rate_chart([], title=EVIL),
    ]
    for chart in charts:
        raw = str(chart)
        assert "<script" not in raw
        assert "&lt;script&gt;" in raw
        root = parse(chart)
        assert not list(root.iter("script")) and not list(root.iter(SVG + "script"))
        title = root.find(SVG + "title")
        assert title is not None and title.text == EVIL


@pytest.mark.parametrize(
    "chart",
    [
        lambda: quantile_chart({}, title="Latency"),
        lambda: quantile_chart({"primary": [], "candidate": [(0.5, math.nan)]}, title="Latency"),
        lambda: rate_chart([], title="Rate", threshold=0.05),
        lambda: rate_chart(hourly([None, None]), title="Rate", threshold=0.05),
        lambda: bar_chart([], title="Bars"),
        lambda: bar_chart([("a", math.nan)], title="Bars"),
        lambda: stacked_bar([], title="Mix"),
        lambda: stacked_bar([("a", 0.0), ("b", 0.0)], title="Mix"),
    ],
)
def test_empty_input_says_no_data(chart: Callable[[], Markup]) -> None:
    root = parse(chart())
    assert "no data" in texts(root)
    desc = root.find(SVG + "desc")
    assert desc is not None and desc.text is not None and "no data" in desc.text


# --- quantile_chart -----------------------------------------------------------------------------


def test_quantile_chart_draws_each_series_with_its_class_and_marked_quantiles() -> None:
    root = parse(
        quantile_chart({"primary": cdf(100, 500), "candidate": cdf(120, 400)}, title="Latency")
    )
    groups = [g for g in root.iter(SVG + "g") if "series" in classes(g)]
    assert [sorted(classes(g) - {"series"}) for g in groups] == [["series-0"], ["series-1"]]
    for group in groups:
        assert len(find(group, "path", "cdf")) == 1
        assert len(find(group, "circle", "marker")) == 3
        labels = [t for t in texts(group) if t[:1] == "p"]
        assert [label.split()[0] for label in labels] == ["p50", "p95", "p99"]
    assert "p99 492" in texts(root)  # 100 + 400 * 0.99**2 = 492.04
    desc = root.find(SVG + "desc")
    assert desc is not None and desc.text is not None
    assert "primary: p50 200 ms, p95 461 ms, p99 492 ms" in desc.text


def test_quantile_chart_y_is_the_share_of_calls() -> None:
    root = parse(quantile_chart({"a": [(0.0, 100.0), (1.0, 200.0)]}, title="Latency"))
    (path,) = find(root, "path", "cdf")
    numbers = [float(n) for n in re.findall(r"[0-9.]+", path.get("d", ""))]
    assert numbers[1] == pytest.approx(LINE_PLOT.bottom, abs=0.05)  # 0% at the bottom
    assert numbers[3] == pytest.approx(LINE_PLOT.top, abs=0.05)  # 100% at the top


def test_quantile_chart_switches_to_log_scale_for_a_wide_range() -> None:
    wide = texts(parse(quantile_chart({"a": cdf(50, 5000)}, title="Latency")))
    assert "latency (ms, log scale)" in wide
    assert {"100", "1k"} <= set(wide)
    narrow = texts(parse(quantile_chart({"a": cdf(100, 1900)}, title="Latency", unit="s")))
    assert "latency (s)" in narrow
    assert not any("log" in t for t in narrow)


def test_quantile_chart_survives_odd_input() -> None:
    cases = [
        {"a": [(0.5, 250.0)]},  # one point
        {"a": [(0.1, 250.0), (0.5, 250.0), (0.9, 250.0)]},  # all equal
        {"a": [(0.1, math.nan), (0.5, 250.0), (math.nan, 1.0), (2.0, 9.0)], "b": []},
    ]
    for series in cases:
        root = parse(quantile_chart(series, title="Latency"))
        assert "no data" not in texts(root)
        assert_well_drawn(root)
    root = parse(quantile_chart(cases[2], title="Latency"))
    assert any("b (no data)" == t for t in texts(root))
    assert len(find(root, "circle", "marker")) == 1  # p50 only; NaN and level 2.0 skipped


SHAPES = {
    "linear": (200, 300, 350, 450, 551, 700, 900, 1000, 1200),
    "short tail": (200, 300, 350, 450, 551, 600, 640, 650, 660),
    "log": (20, 30, 50, 90, 150, 400, 900, 1500, 3000),
    "seconds": (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("scale", [1, 40])
@pytest.mark.parametrize("apart", [-0.05, -0.03, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.21])
def test_quantile_marker_labels_of_close_series_do_not_overlap(
    shape: str, scale: int, apart: float
) -> None:
    """Two curves whose p50, p95 and p99 are 1-5% apart (and the reported 551 vs 667): no label
    box overlaps another label or a marker, and each stays in the viewBox, by the estimate the
    layout uses."""
    primary = [(q, v * scale) for q, v in zip(LEVELS, SHAPES[shape], strict=True)]
    candidate = [(q, v * (1 + apart)) for q, v in primary]
    root = parse(quantile_chart({"primary": primary, "candidate": candidate}, title="Latency"))
    groups = [g for g in root.iter(SVG + "g") if "series" in classes(g)]
    labels: list[tuple[int, str, Box]] = []
    markers: list[tuple[int, Box]] = []
    for index, group in enumerate(groups):
        tags = []
        for text in find(group, "text", "marker-label"):
            assert text.get("font-size") == "10"
            labels.append((index, "".join(text.itertext()), text_box(text, 10.0)))
            tags.append("".join(text.itertext()).split()[0])
        assert tags == ["p50", "p95", "p99"]
        for circle in find(group, "circle", "marker"):
            cx, cy, r = (float(circle.get(a, "nan")) for a in ("cx", "cy", "r"))
            markers.append((index, (cx - r, cy - r, cx + r, cy + r)))
    for i, (series_a, text_a, a) in enumerate(labels):
        assert 0 <= a[0] and a[2] <= CHART_WIDTH, text_a
        assert a[3] <= LINE_PLOT.bottom, text_a  # clear of the x tick labels
        for series_b, text_b, b in labels[i + 1 :]:
            assert not overlap(a, b), (series_a, text_a, series_b, text_b)
        for series_m, marker in markers:
            assert not overlap(a, marker), (series_a, text_a, series_m, marker)
    assert_x_ticks_fit(root)


def test_close_series_put_their_labels_on_either_side() -> None:
    """Level with their markers, series 0 on the left and series 1 on the right, when there is
    room: both labels still beside their own markers."""
    primary = [(q, v) for q, v in zip(LEVELS, SHAPES["linear"], strict=True)]
    candidate = [(q, v * 1.03) for q, v in primary]
    root = parse(quantile_chart({"primary": primary, "candidate": candidate}, title="Latency"))
    groups = [g for g in root.iter(SVG + "g") if "series" in classes(g)]
    p50 = []
    for group in groups:
        marker = find(group, "circle", "marker")[0]
        label = find(group, "text", "marker-label")[0]
        assert "".join(label.itertext()).startswith("p50 ")
        p50.append((float(marker.get("cx", "nan")), float(label.get("x", "nan")), label))
    (cx0, x0, label0), (cx1, x1, label1) = p50
    assert label0.get("text-anchor") == "end" and x0 < cx0
    assert label1.get("text-anchor") == "start" and x1 > cx1
    assert label0.get("y") == label1.get("y")


def test_quantile_x_tick_labels_stay_inside_for_large_values() -> None:
    root = parse(quantile_chart({"a": cdf(900_000, 1_900_000)}, title="Latency", unit="µs"))
    assert "2,000,000" in texts(root)
    assert_x_ticks_fit(root)
    (last,) = [t for t in root.iter(SVG + "text") if t.text == "2,000,000"]
    assert last.get("text-anchor") == "end"


# --- rate_chart ---------------------------------------------------------------------------------


def test_threshold_line_sits_at_the_threshold() -> None:
    points = hourly([0.0, 0.05, 0.1], width=0.0)
    lo, hi = rate_y_domain(points, threshold=0.05)
    assert (lo, hi) == pytest.approx((0.0, 0.15))  # 0..0.1 padded by 10%, to nice ticks
    root = parse(rate_chart(points, title="Rate", threshold=0.05, threshold_label="rollback"))
    (line,) = find(root, "line", "threshold")
    expected = LINE_PLOT.bottom - (0.05 - lo) / (hi - lo) * LINE_PLOT.height
    assert expected == pytest.approx(LinearScale(lo, hi, LINE_PLOT.bottom, LINE_PLOT.top)(0.05))
    assert float(line.get("y1", "nan")) == pytest.approx(expected, abs=0.05)
    assert float(line.get("y2", "nan")) == pytest.approx(expected, abs=0.05)
    # The same height as the axis tick labelled 5% (tick labels sit 4 units below their line).
    (tick,) = [t for t in root.iter(SVG + "text") if t.text == "5%"]
    assert float(tick.get("y", "nan")) - 4 == pytest.approx(expected, abs=0.05)
    assert any("rollback 5.0%" in t for t in texts(root))


def test_rate_y_domain_zooms_but_stays_within_0_and_1() -> None:
    lo, hi = rate_y_domain(hourly([0.95, 0.99]))  # the band reaches 1.0: no room above it
    assert 0.9 <= lo < 0.94 and hi == 1.0
    lo, hi = rate_y_domain(hourly([0.30, 0.32]), threshold=0.35)
    assert 0.2 <= lo < 0.30 and 0.35 < hi <= 0.4
    assert rate_y_domain(hourly([0.0, 0.0], width=0.0)) == pytest.approx((0.0, 0.01))


def test_a_missing_estimate_breaks_the_line() -> None:
    root = parse(rate_chart(hourly([0.02, 0.03, None, 0.04, 0.05]), title="Rate"))
    assert len(find(root, "path", "line")) == 2
    assert len(find(root, "polygon", "band")) == 2
    assert len(find(root, "circle", "point")) == 4
    whole = parse(rate_chart(hourly([0.02, 0.03, 0.04, 0.05]), title="Rate"))
    assert len(find(whole, "path", "line")) == 1


def test_baseline_is_dashed_with_its_own_band() -> None:
    root = parse(
        rate_chart(
            hourly([0.02, 0.03, 0.04]),
            title="Rate",
            baseline=hourly([0.01, 0.01, 0.01]),
            baseline_label="noise arm",
        )
    )
    (baseline,) = find(root, "path", "baseline")
    assert baseline.get("stroke-dasharray")
    assert len(find(root, "polygon", "baseline-band")) == 1
    assert len(find(root, "polygon", "band")) == 2
    assert "noise arm" in texts(root)


def test_each_point_has_a_tooltip() -> None:
    root = parse(rate_chart(hourly([0.02, 0.035]), title="Rate"))
    tips = [p.findtext(SVG + "title") for p in find(root, "circle", "point")]
    assert tips == [
        "2026-05-01 00:00 UTC: 2.0% (interval 1.0%–3.0%), n=1,000",
        "2026-05-01 01:00 UTC: 3.5% (interval 2.5%–4.5%), n=1,001",
    ]


def test_time_axis_is_labelled_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = [
        RatePoint(datetime(2026, 5, 1, 2, 0, tzinfo=plus_two), 0.1, 0.05, 0.15, 10),
        RatePoint(datetime(2026, 5, 1, 8, 0, tzinfo=plus_two), 0.2, 0.15, 0.25, 10),
    ]
    short = texts(parse(rate_chart(local, title="Rate")))
    assert "00:00" in short and "06:00" in short  # 02:00+02:00 is midnight UTC
    days = texts(parse(rate_chart(hourly([0.1] * 72), title="Rate")))
    assert "05-02 00:00" in days
    assert not any(re.fullmatch(r"\d\d:\d\d", t) for t in days)


def test_the_last_time_tick_label_is_not_cut_off() -> None:
    """Points every 6 hours up to 12-05 12:00: the last tick sits on the last point, near the
    right side; its label is anchored at the end instead of running past the viewBox."""
    start = datetime(2026, 12, 3, tzinfo=UTC)
    points = [RatePoint(start + timedelta(hours=6 * i), 0.02, 0.01, 0.03, 100) for i in range(11)]
    root = parse(rate_chart(points, title="Rate", threshold=0.05))
    labels = [
        t for g in root.iter(SVG + "g") if "x-ticks" in classes(g) for t in g.iter(SVG + "text")
    ]
    assert labels[-1].text == "12-05 12:00"
    assert labels[-1].get("text-anchor") == "end"
    assert float(labels[-1].get("x", "nan")) < CHART_WIDTH
    assert labels[0].get("text-anchor") is None  # centred on its tick: there is room
    assert_x_ticks_fit(root)


@pytest.mark.parametrize("hours", [1, 3, 7, 13, 24, 25, 48, 60, 72, 24 * 7, 24 * 30, 24 * 365])
@pytest.mark.parametrize("offset", [0.0, 0.5, 11.5])
def test_every_time_tick_label_fits(hours: int, offset: float) -> None:
    start = T0 + timedelta(hours=offset)
    points = [
        RatePoint(start + timedelta(hours=hours * i / 12), 0.02, 0.01, 0.03, 10) for i in range(13)
    ]
    assert_x_ticks_fit(parse(rate_chart(points, title="Rate")))


def test_rate_chart_survives_odd_input() -> None:
    for points in (
        hourly([0.02]),  # one point
        hourly([0.03, 0.03, 0.03], width=0.0),  # all equal
        [
            RatePoint(T0, math.nan, None, 0.1, 0),  # NaN estimate, half an interval
            RatePoint(T0 + timedelta(hours=1), 0.2, 0.1, 0.3, 5),
        ],
        hourly([1.5, -0.2]),  # out of range: clamped into the plot
    ):
        root = parse(rate_chart(points, title="Rate", threshold=0.05, percent=False))
        assert "no data" not in texts(root)
        assert_well_drawn(root)
        for point in find(root, "circle", "point"):
            assert LINE_PLOT.top <= float(point.get("cy", "nan")) <= LINE_PLOT.bottom
        for band in find(root, "polygon", "band"):
            ys = [float(xy.split(",")[1]) for xy in band.get("points", "").split()]
            assert all(LINE_PLOT.top <= y <= LINE_PLOT.bottom for y in ys)


# --- bar_chart ----------------------------------------------------------------------------------


def test_bar_chart_keeps_the_order_labels_values_and_highlight() -> None:
    long = "a reason with a name far too long to fit in the label column"
    root = parse(
        bar_chart(
            [("refusal", 0.12), (long, 0.05), ("fence", 0.0), ("skip", math.nan)],
            title="Not judged",
            highlight="fence",
        )
    )
    rows = [g for g in root.iter(SVG + "g") if "bar-row" in classes(g)]
    assert [r.findtext(SVG + "title") for r in rows] == [
        "refusal: 12.0%",
        f"{long}: 5.0%",
        "fence: 0%",
    ]
    labels = [r.findtext(f"{SVG}text[@class='bar-label']") or "" for r in rows]
    assert labels[0] == "refusal" and labels[2] == "fence"
    assert labels[1].endswith("…") and long.startswith(labels[1][:-1]) and len(labels[1]) < 30
    values = [r.findtext(f"{SVG}text[@class='bar-value']") for r in rows]
    assert values == ["12.0%", "5.0%", "0%"]
    bars = [r.find(SVG + "rect") for r in rows]
    assert [sorted(classes(b)) for b in bars if b is not None] == [
        ["bar"],
        ["bar"],
        ["bar", "highlight"],
    ]
    widths = [float(b.get("width", "nan")) for b in bars if b is not None]
    assert widths[0] > widths[1] > widths[2] == 0.0
    assert_well_drawn(root)


def test_bar_chart_without_percent_and_all_zero() -> None:
    root = parse(bar_chart([("a", 0.0), ("b", 0.0)], title="Zeros", percent=False))
    assert_well_drawn(root)
    assert "0" in texts(root)
    root = parse(bar_chart([("a", -3.0), ("b", 1200.0)], title="Counts", percent=False))
    assert "1,200" in texts(root)
    assert_well_drawn(root)


@pytest.mark.parametrize(
    ("bars", "percent"),
    [
        ([("refusal", 0.12), ("fence", 0.03)], True),
        ([("refusal", 0.12), ("fence", -0.03)], True),
        ([("up", 12.5), ("down", -12.5)], True),  # 1250.0%
        ([("alpha", 12_345_678.0), ("beta", -2_345_678.0)], False),
        ([("alpha", 123_456_789_012.0), ("small", 5.0)], False),
        ([("beta", -123_456_789.0), ("small", 5.0)], False),
        ([("x" * 60, 0.5), ("y" * 25, 0.2), ("z" * 26, -0.1)], True),
    ],
)
def test_bar_chart_text_stays_inside_and_apart(
    bars: list[tuple[str, float]], percent: bool
) -> None:
    """Value labels stay within the viewBox and clear of the names' column; names and tick
    labels stay within the viewBox; by the estimate the layout uses."""
    root = parse(bar_chart(bars, title="Bars", percent=percent))
    rows = [g for g in root.iter(SVG + "g") if "bar-row" in classes(g)]
    assert len(rows) == len(bars)
    names = []
    for row in rows:
        (name,) = find(row, "text", "bar-label")
        (value,) = find(row, "text", "bar-value")
        names.append(text_box(name, 12.0))
        box = text_box(value, float(value.get("font-size", "nan")))
        assert 0 <= box[0] and box[2] <= CHART_WIDTH, (value.text, box)
        assert box[0] > names[-1][2], (value.text, box)
    for box in names:
        assert 0 <= box[0] and box[2] <= CHART_WIDTH, box
    assert_x_ticks_fit(root)
    assert {"0", "0%"} & set(texts(root))  # the zero tick keeps its label
    assert_well_drawn(root)


def test_crowded_tick_labels_are_thinned_around_zero() -> None:
    """Ticks whose labels would collide keep their grid lines and marks, but only every other
    label is shown, zero's included."""
    root = parse(bar_chart([("beta", -123_456_789.0), ("small", 5.0)], title="B", percent=False))
    (group,) = [g for g in root.iter(SVG + "g") if "x-ticks" in classes(g)]
    assert len(group.findall(SVG + "line")) == 5  # -150M, -100M, -50M, 0, 50M
    assert [t.text for t in group.iter(SVG + "text")] == ["-100,000,000", "0"]  # 2nd, 4th
    assert_x_ticks_fit(root)


# --- stacked_bar --------------------------------------------------------------------------------


def test_stacked_bar_segments_and_legend() -> None:
    parts = [
        ("equivalent", 600.0),
        ("candidate_better", 100.0),
        ("candidate_worse", 100.0),
        ("different", 150.0),
        ("not judged", 50.0),
        ("error", 0.0),
    ]
    root = parse(stacked_bar(parts, title="Verdict mix"))
    segments = [r for r in root.iter(SVG + "rect") if "part" in classes(r)]
    segments = [r for r in segments if "swatch" not in classes(r)]
    assert [sorted(classes(s) - {"part"}) for s in segments] == [
        ["part-equivalent"],
        ["part-candidate-better"],
        ["part-candidate-worse"],
        ["part-different"],
        ["part-not-judged"],
    ]
    widths = [float(s.get("width", "nan")) for s in segments]
    assert sum(widths) == pytest.approx(640 - 32, abs=0.3)
    assert widths[0] == pytest.approx(0.6 * (640 - 32), abs=0.1)
    legend = [" ".join("".join(t.itertext()).split()) for t in root.iter(SVG + "text")]
    assert "equivalent 60.0%" in legend and "error 0%" in legend
    assert_well_drawn(root)


def test_slugify() -> None:
    assert slugify("not judged") == "not-judged"
    assert slugify("candidate_better") == "candidate-better"
    assert slugify("  Odd/Name!! ") == "odd-name"
    assert slugify("<>") == "part"


def test_interval_chart_draws_each_row_and_escapes_labels() -> None:
    from dashboards.web.charts.interval import Band, IntervalRow, interval_chart

    chart = interval_chart(
        [
            IntervalRow("all queries", 0.32, 0.28, 0.36, 60),
            IntervalRow("<script>x</script>", 0.87, 0.85, 0.88, 16),
            IntervalRow("no value", float("nan"), 0.1, 0.2, 3),
        ],
        title="overlap@10",
        bands=[Band("same family", 0.845, 0.895)],
    )
    assert chart.count('class="interval-row"') == 2  # NaN is left out
    assert "<script>" not in chart and "&lt;script&gt;x&lt;/script&gt;" in chart
    assert "0.870 (0.850–0.880)" in chart and 'class="reference-band reference-band-0"' in chart
    # the row's line spans its interval on the 0–1 axis: 0.28 lies left of 0.36
    x1, x2 = re.findall(r'<line class="interval"[^>]* x1="([\d.]+)"[^>]* x2="([\d.]+)"', chart)[0]
    assert float(x1) < float(x2)
    assert "no data" in interval_chart([], title="t")
