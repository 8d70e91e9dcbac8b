"""Trigger power and false-fire rates by simulation, beside a fixed-sample test.

    .venv/bin/python -m tests.benchmarks.trigger_power [--runs 500]

For each rule kind: the share of simulated A/A migrations in which the rule ever fires when
evaluated every 50 pairs up to 20,000, and, with a true regression, the share that fires and
the median number of pairs it took. For the paired refusal rule, the pairs a fixed-sample test
(Newcombe's paired interval, looked at once) needs to fire in half the runs are printed beside
it: the price of being allowed to look every minute.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tests.dashboards.triggers import simulate as sim


def line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    runs = args.runs
    aa = sim.paired_refusals(rng, runs, 0.02, 0.02, margin=0.005)
    aa0 = sim.paired_refusals(rng, runs, 0.02, 0.02, margin=0.0)
    rise = sim.paired_refusals(rng, runs, 0.02, 0.03, margin=0.005, every=500, up_to=100_000)
    fixed = sim.fixed_sample_pairs(rng, 0.02, 0.03, margin=0.005)
    line(
        f"refusal_difference (margin 0.5 pt): A/A false fires {aa.fire_rate:.1%}"
        f" (margin 0: {aa0.fire_rate:.1%}); 2% -> 3%: fires in {rise.fire_rate:.0%},"
        f" median {rise.median_pairs:,.0f} pairs (fixed-sample test: {fixed:,} pairs)"
    )
    eq_aa = sim.rate_level(rng, runs, 0.90, level=0.90, bad_above=False)
    eq_low = sim.rate_level(rng, runs, 0.85, level=0.90, bad_above=False)
    line(
        f"equivalence_rate (floor 90%): at exactly 90% false fires {eq_aa.fire_rate:.1%};"
        f" at 85%: fires in {eq_low.fire_rate:.0%}, median {eq_low.median_pairs:,.0f} pairs"
    )
    small = max(20, runs // 20)
    slow = sim.latency_tail(rng, small, 0.40, margin=0.30, every=1000, up_to=60_000)
    fine = sim.latency_tail(rng, small, 0.10, margin=0.30, every=1000, up_to=60_000)
    same = sim.latency_tail(rng, small, 0.0, margin=0.30, every=1000, up_to=60_000)
    line(
        f"latency_ratio p99 (margin 30%, {small} runs): A/A false fires {same.fire_rate:.0%};"
        f" +10%: {fine.fire_rate:.0%}; +40%: fires in {slow.fire_rate:.0%},"
        f" median {slow.median_pairs:,.0f} pairs"
    )


if __name__ == "__main__":
    main()
