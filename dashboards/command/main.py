"""The `shadowjudge` command: every role alone (`mirror`, `runner`, `judge`, `dashboards`) or
together (`run`), and the one-shot commands (`init`, `migrate`, `rejudge`, `check`,
`calibrate`, `dlq`, `report`, `review digest`, `triggers check`, `embeddings reembed`,
`embeddings thresholds`, `embeddings compare`, `embeddings report`).

Settings are loaded once here and passed down; `dashboards.command.preflight` checks what the
command needs (the store directory free, the servers answering, the migration known) before
anything heavy is imported, so those failures are one line within a second; then
`dashboards.command.supervisor` starts the roles and owns the signals. The roles' modules, the
analysis and the SDKs are imported only by the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dashboards.command import (
    demo,
    dlq,
    embeddings,
    init,
    preflight,
    report,
    review,
    rollout,
    triggers,
)
from dashboards.settings import DEFAULT_PATH, Settings, load_settings, start_warnings
from judge.errors import StoreError
from mirror.errors import ConfigError

if TYPE_CHECKING:
    from judge.store.claim import DirectoryClaim

log = logging.getLogger("shadowjudge")

#: Where `migrate --cluster` finds the cluster schema unless told (the image's working directory
#: holds it there too: deploy/Dockerfile).
CLUSTER_SQL = Path("deploy/clickhouse/cluster.sql")

#: The roles each long-running command starts.
ROLES = {
    "run": {"mirror", "runner", "judge", "dashboards"},
    "dashboards": {"dashboards"},
    "mirror": {"mirror"},
    "runner": {"runner"},
    "judge": {"judge"},
}


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
    migrate_ = commands.add_parser("migrate", help="apply the ClickHouse DDL (idempotent)")
    migrate_.add_argument(
        "--cluster",
        metavar="NAME",
        default=None,
        help="a ClickHouse cluster of remote_servers: apply the cluster schema (--cluster-sql)"
        " ON CLUSTER NAME, then the migrations it does not record, on every node",
    )
    migrate_.add_argument(
        "--cluster-sql",
        type=Path,
        default=CLUSTER_SQL,
        help=f"the cluster schema (default: ./{CLUSTER_SQL})",
    )
    migrate_.set_defaults(cluster_ddl="")
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
    init.add_parser(commands)
    demo.add_parser(commands)
    dlq.add_parser(commands)
    embeddings.add_parser(commands)
    report.add_parser(commands)
    review.add_parser(commands)
    rollout.add_parser(commands)
    triggers.add_parser(commands)
    return parser


async def migrate(settings: Settings, cluster: str | None = None, sql: str = "") -> None:
    from judge.store.store import AsyncStore

    async with await AsyncStore.open(settings.store) as store:
        if cluster is None:
            applied = await store.migrate()
        else:
            applied = await store.migrate_cluster(cluster, sql)
    on = f" on cluster {cluster}" if cluster else ""
    print(f"schema up to date{on} (applied now: {applied or 'nothing'})")  # noqa: T201


def _cluster_sql(settings: Settings, args: argparse.Namespace) -> str:
    """The cluster schema `migrate --cluster` applies; a ConfigError names what to fix."""
    if urlsplit(settings.store.url).scheme == "chdb":
        raise ConfigError(
            "migrate --cluster: store.url is a chdb:// directory; a cluster is ClickHouse"
            " servers (store.url: http(s)://user:pass@host:8123/db)"
        )
    try:
        return str(args.cluster_sql.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"--cluster-sql {args.cluster_sql}: {exc.strerror or exc}: run from the directory"
            f" holding {CLUSTER_SQL} (the image's working directory does), or name the file"
        ) from exc


async def run_rejudge(settings: Settings, args: argparse.Namespace) -> None:
    from dashboards.command.supervisor import scorer_for
    from judge.rejudge import rejudge
    from judge.store.store import AsyncStore

    async with await AsyncStore.open(settings.store, create=False) as store:
        await store.migrate()
        stored = await store.run(store.store.migration_names)
        preflight.check_migration(args.migration, settings, lambda: stored)
        async with scorer_for(settings) as scorer:
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
    if args.command == "init":  # writes the settings: none to load
        try:
            return init.run(args, args.config or DEFAULT_PATH)
        except ConfigError as exc:
            print(f"shadowjudge: {exc}", file=sys.stderr)  # noqa: T201
            return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("httpx", "httpx2"):  # a line per request of the judge's and the demo's SDKs
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"shadowjudge: bad configuration\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "check" or args.command in ROLES:
        from_file = args.config is not None or DEFAULT_PATH.exists()
        for warning in start_warnings(settings, from_file=from_file):
            log.warning(warning)
    if args.command == "check":
        print(_shown(settings))  # noqa: T201
        return 0
    held: DirectoryClaim | None = None
    try:
        if args.command == "migrate" and args.cluster is not None:
            args.cluster_ddl = _cluster_sql(settings, args)  # before the store is probed
        held = _preflight(settings, args.command)
        return _dispatch(settings, args)
    except ConfigError as exc:  # a taken port, a variable unset: fix the setting, run again
        print(f"shadowjudge: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except StoreError as exc:
        print(f"shadowjudge: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        if held is not None:
            held.release()


def _shown(settings: Settings) -> str:
    """The settings as `check` prints them: keys are named by environment variable only, and
    the passwords a store or bus URL may carry are hidden."""
    shown = settings.model_dump(mode="json")
    for section in ("store", "bus"):
        shown[section]["url"] = preflight.safe_url(shown[section]["url"])
    return json.dumps(shown, indent=2)


def _preflight(settings: Settings, command: str) -> DirectoryClaim | None:
    """What `command` needs, checked before anything is imported or started: a chDB directory
    claimed for the whole process (a second `run` on it stops here), the servers answering."""
    held = None
    if command in ("run", "judge", "dashboards", "migrate", "rejudge"):
        preflight.probe_store(settings)
        held = preflight.claim_store(settings, create=command != "rejudge")
    try:
        if command in ("run", "runner", "judge", "dlq"):
            preflight.require_bus(settings)
        elif command == "mirror":  # the live path serves without a bus: say it, do not refuse
            problem = preflight.probe_bus(settings)
            if problem:
                log.warning(
                    "%s: the sidecar forwards every call; captures are dropped and counted"
                    " until a broker answers",
                    problem,
                )
    except BaseException:
        if held is not None:
            held.release()
        raise
    return held


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    import uvloop

    if args.command in ROLES:
        from dashboards.command.supervisor import run_roles, tune_gc

        young = 0
        if "judge" in ROLES[args.command]:
            from judge.worker import young_objects

            young = young_objects(settings.store.batch_rows)
        tune_gc(young)
        uvloop.run(run_roles(settings, ROLES[args.command]))
        return 0
    if args.command == "migrate":
        uvloop.run(migrate(settings, args.cluster, args.cluster_ddl))
    elif args.command == "rejudge":
        from dashboards.command.supervisor import tune_gc

        tune_gc()  # scoring many pairs: see tune_gc
        uvloop.run(run_rejudge(settings, args))
    elif args.command == "demo":
        return demo.run(args)
    elif args.command == "dlq":
        return uvloop.run(dlq.run(settings, args))
    elif args.command == "report":
        return report.run(settings, args)
    elif args.command == "review":
        return review.run(settings, args)
    elif args.command == "triggers":
        return triggers.run(settings, args)
    elif args.command == "rollout":
        return rollout.run(settings, args)
    elif args.command == "embeddings":
        return embeddings.run(settings, args)
    return 0
