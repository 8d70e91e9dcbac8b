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

from dashboards.web.charts.bars import bar_chart, stacked_bar
from dashboards.web.charts.frame import CHART_WIDTH, LINE_PLOT, LinearScale, PlotArea, nice_ticks
from dashboards.web.charts.palette import (
    BAND_COLOUR,
    BASELINE_COLOUR,
    HIGHLIGHT_COLOUR,
    LINE_COLOUR,
    PART_COLOURS,
    SERIES_COLOURS,
    THRESHOLD_COLOUR,
)
from dashboards.web.charts.quantile import quantile_chart
from dashboards.web.charts.rate import RatePoint, rate_chart, rate_y_domain
from dashboards.web.charts.text import slugify

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
