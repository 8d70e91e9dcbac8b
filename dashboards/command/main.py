"""The `shadowjudge` command: every role alone (`mirror`, `runner`, `judge`, `dashboards`) or
together (`run`), and the one-shot commands (`migrate`, `rejudge`, `check`, `calibrate`, `dlq`,
`report`, `review digest`, `triggers check`).

Settings are loaded once here and passed down; `dashboards.command.supervisor` starts the roles
and owns the signals.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from dashboards.command import dlq, report, review, triggers
from dashboards.command.supervisor import run_roles, scorer_for, tune_gc
from dashboards.settings import Settings, load_settings, start_warnings
from judge.errors import StoreError
from judge.rejudge import rejudge
from judge.store.store import AsyncStore
from mirror.errors import ConfigError

log = logging.getLogger("shadowjudge")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowjudge", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="settings file (default: ./shadowjudge.yaml if present, else built-in defaults)",
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="every role in one process (memory bus, embedded store)")
    commands.add_parser("mirror", help="the sidecar proxy alone")
    commands.add_parser("runner", help="the shadow runner alone (a consumer group member)")
    commands.add_parser("judge", help="the judge worker alone (a consumer group member)")
    commands.add_parser(
        "dashboards", help="the pages and the analysis API alone (a server store, or a free chDB)"
    )
    commands.add_parser("migrate", help="apply the ClickHouse DDL (idempotent)")
    rejudge = commands.add_parser(
        "rejudge", help="score stored pairs again with the current judge version"
    )
    rejudge.add_argument("--migration", required=True)
    rejudge.add_argument("--since", required=True, type=_moment, help="ISO time, UTC if no zone")
    rejudge.add_argument("--until", type=_moment, default=None)
    commands.add_parser("check", help="validate the settings file and print the result")
    calibrate = commands.add_parser(
        "calibrate", help="check a detector against labelled data (see `calibrate refusal -h`)"
    )
    calibrate.add_argument("detector", choices=["refusal"])
    calibrate.add_argument("options", nargs=argparse.REMAINDER)
    dlq.add_parser(commands)
    report.add_parser(commands)
    review.add_parser(commands)
    triggers.add_parser(commands)
    return parser


async def migrate(settings: Settings) -> None:
    async with await AsyncStore.open(settings.store) as store:
        applied = await store.migrate()
    print(f"schema up to date (applied now: {applied or 'nothing'})")  # noqa: T201


async def run_rejudge(settings: Settings, args: argparse.Namespace) -> None:
    async with await AsyncStore.open(settings.store) as store, scorer_for(settings) as scorer:
        await store.migrate()
        report = await rejudge(store, scorer, args.migration, args.since, args.until)
    print(  # noqa: T201
        f"rejudged {report.scored} pairs of {args.migration} at {scorer.version}: "
        f"{report.written} new rows"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "calibrate":  # works on a CSV alone: no settings needed
        from judge.scorers.calibrate import main as calibrate_refusal

        return calibrate_refusal(args.options)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"shadowjudge: bad configuration\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command in ("check", "run", "mirror", "runner", "judge", "dashboards"):
        for warning in start_warnings(settings):
            log.warning(warning)
    if args.command == "check":
        print(settings.model_dump_json(indent=2))  # noqa: T201 - secrets are env names only
        return 0
    tune_gc()
    try:
        if args.command == "migrate":
            uvloop.run(migrate(settings))
        elif args.command == "rejudge":
            uvloop.run(run_rejudge(settings, args))
        elif args.command == "dlq":
            return uvloop.run(dlq.run(settings, args))
        elif args.command == "report":
            return report.run(settings, args)
        elif args.command == "review":
            return review.run(settings, args)
        elif args.command == "triggers":
            return triggers.run(settings, args)
        else:
            roles = {
                "run": {"mirror", "runner", "judge", "dashboards"},
                "dashboards": {"dashboards"},
                "mirror": {"mirror"},
                "runner": {"runner"},
                "judge": {"judge"},
            }
            uvloop.run(run_roles(settings, roles[args.command]))
    except ConfigError as exc:  # a taken port, a variable unset: fix the setting, run again
        print(f"shadowjudge: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except StoreError as exc:
        print(f"shadowjudge: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0
