"""The charts' fallback colours, the Okabe-Ito colour-blind-safe palette: each classed element
(`series-N`, `line`, `band`, `threshold`, `highlight`, `part-<slug>`, …) carries its colour as a
`color` attribute, with fill and stroke set to `currentColor`, so the SVG reads on its own (in the
digest, or opened as a file) while the page stylesheet can still theme the class."""

from __future__ import annotations

from collections.abc import Mapping

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
