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
