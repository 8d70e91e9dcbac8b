"""`shadowjudge report --migration NAME`: a migration's analysis as a table in the terminal.

Where the figures come from: `--url` (a dashboards address) when given; otherwise the local
dashboards address from the settings when something answers there (a running `run` holds the
embedded store, so asking it is the only way in); otherwise the store itself. The token, when
the dashboards need one, is read from the variable `dashboards.token_env` names.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from dashboards.command.preflight import (
    ask_dashboards,
    check_migration,
    names_from_api,
    open_for_reading,
    safe_url,
)
from mirror.errors import ConfigError

if TYPE_CHECKING:  # the analysis, the pages' helpers and httpx load when a report is made
    from dashboards.analysis.service import MigrationAnalysis
    from dashboards.settings import Settings


def add_parser(commands: Any) -> None:
    report = commands.add_parser("report", help="a migration's analysis as a terminal table")
    report.add_argument("--migration", required=True)
    report.add_argument("--window", default="7d", help="1h, 24h, 7d, 30d, all, or a day")
    report.add_argument("--segment", default="*", help="* or label=value")
    report.add_argument(
        "--approximate",
        choices=("include", "exclude", "only"),
        default="include",
        help="pairs whose candidate request was translated approximately: counted (include),"
        " left out (exclude) or read alone (only); combines with --segment",
    )
    report.add_argument("--judge-version", default=None)
    report.add_argument(
        "--url", default=None, help="dashboards address (default: the local one, if it answers)"
    )
    report.add_argument("--json", action="store_true", help="print the analysis as JSON")


def fetch(settings: Settings, args: argparse.Namespace) -> tuple[MigrationAnalysis | None, str]:
    """The analysis, and where it came from."""
    from dashboards.analysis.service import Analyst, MigrationAnalysis
    from dashboards.analysis.translation import translation_segment
    from dashboards.analysis.window import parse_window

    try:  # the store reads this segment; the pages' API takes the two as they were given
        segment = translation_segment(args.segment, args.approximate)
    except ValueError as exc:
        raise ConfigError(f"--segment and --approximate: {exc}") from exc
    params = {"window": args.window, "segment": args.segment, "approximate": args.approximate}
    if args.judge_version:
        params["judge_version"] = args.judge_version
    answer, url, headers = ask_dashboards(
        settings, args.url, f"/api/v1/migrations/{args.migration}/analysis", params, timeout=30
    )
    if answer is not None:
        if answer.status_code == 404:  # an unknown name, or no pairs in the window
            check_migration(args.migration, settings, lambda: names_from_api(url, headers))
            return None, url
        if answer.status_code != 200:
            raise ConfigError(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
        return MigrationAnalysis.model_validate(answer.json()), url
    window = parse_window(args.window)
    with open_for_reading(settings) as store:
        check_migration(args.migration, settings, store.migration_names)
        from dashboards.command.serve import web_config  # the pages' server: 0.5 s to import

        config = web_config(settings)
        analyst = Analyst(store, sampling=config.sampling, models=config.models)
        found = analyst.analysis(
            args.migration, window, segment=segment, judge_version=args.judge_version
        )
    return found, safe_url(settings.store.url)


def table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def render(analysis: MigrationAnalysis, source: str, out: TextIO) -> None:
    from dashboards.web.views import interval, ms, num, pct, signed_interval, usd

    out.write(
        f"{analysis.migration} · window {analysis.window.label} · segment {analysis.segment}"
        f" · judge {analysis.judge_version} · from {source}\n\n"
    )
    arms = analysis.arms
    rows = [["figure", *[f"{a.arm} ({a.arm_kind})" for a in arms]]]

    def add(name: str, values: list[str]) -> None:
        rows.append([name, *values])

    add("pairs", [num(a.pairs) for a in arms])
    add(
        "judged",
        [f"{num(a.judged)} ({pct(a.judged / a.pairs if a.pairs else None)})" for a in arms],
    )
    add("equivalent", [interval(a.equivalence) for a in arms])
    add("  noise floor", [interval(a.noise_equivalence) for a in arms])
    for metric in ("equivalence", "worse"):
        add(
            f"  {metric}, reviewer-corrected",
            [
                next((interval(c.corrected) for c in a.corrections if c.metric == metric), "–")
                for a in arms
            ],
        )
    add(
        "better / worse / different",
        [
            " / ".join(
                num(a.verdicts[v]) for v in ("candidate_better", "candidate_worse", "different")
            )
            for a in arms
        ],
    )
    add("refusals primary", [interval(a.primary.refusal_rate) for a in arms])
    add("refusals candidate", [interval(a.candidate.refusal_rate) for a in arms])
    add("refusal difference", [signed_interval(a.refusal_difference) for a in arms])
    add("format drift", [interval(a.format_drift) for a in arms])
    for level in ("p50", "p95", "p99"):
        add(
            f"latency {level} prim → cand",
            [
                f"{ms(getattr(a.primary.latency_ms, level, None))} → "
                f"{ms(getattr(a.candidate.latency_ms, level, None))}"
                for a in arms
            ],
        )
    add(
        "cost per call prim → cand",
        [
            f"{usd(a.primary.cost_per_call_usd)} → {usd(a.candidate.cost_per_call_usd)}"
            for a in arms
        ],
    )
    add(
        "cost per day prim → cand",
        [f"{usd(a.primary.cost_per_day_usd)} → {usd(a.candidate.cost_per_day_usd)}" for a in arms],
    )
    add(
        "usage known (candidate)",
        [pct(a.candidate.tokens_known / a.pairs if a.pairs else None) for a in arms],
    )
    add("triggers", [", ".join(f"{t.rule}: {t.decision}" for t in a.triggers) or "–" for a in arms])
    table(rows, out)
    for arm in arms:
        if arm.coverage:
            out.write(f"\nnot judged ({arm.arm}):\n")
            for cause in arm.coverage:
                fix = f" — {cause.fix}" if cause.fix else ""
                out.write(f"  {num(cause.count):>8}  {pct(cause.share):>6}  {cause.cause}{fix}\n")


def run(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    analysis, source = fetch(settings, args)
    if analysis is None:
        sys.stderr.write(
            f"shadowjudge: no pairs of migration {args.migration!r} in the window {args.window}\n"
        )
        return 1
    if args.json:
        out.write(analysis.model_dump_json(indent=2) + "\n")
    else:
        render(analysis, source, out)
    return 0
