"""`shadowjudge triggers check --migration NAME`: the rules' decisions now, as an exit code for
CI/CD pipelines: 0 clear, 1 fire, 2 hold (not enough evidence yet, or a migration name found in
neither the settings nor the store: no evidence is not a pass), 3 the check itself failed.

It asks the dashboards' API when something answers there (a running `run` holds the embedded
store) and evaluates against the store itself otherwise. Either way the check only reads: it
writes no audit row and sends no alert.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from dashboards.command.preflight import (
    UnknownMigrationError,
    ask_dashboards,
    check_migration,
    names_from_api,
    open_for_reading,
)
from judge.errors import StoreError
from mirror.errors import ConfigError

if TYPE_CHECKING:
    from dashboards.settings import Settings

#: The exit code of each decision (`dashboards.triggers.rules.Decision`'s values).
EXIT = {"clear": 0, "fire": 1, "hold": 2}
HOLD = EXIT["hold"]
FAILED = 3


def add_parser(commands: Any) -> None:
    triggers = commands.add_parser("triggers", help="rollback triggers: `triggers check`")
    actions = triggers.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="evaluate the rules now; exit 0 clear, 1 fire, 2 hold, 3 failed"
    )
    check.add_argument("--migration", required=True)
    check.add_argument("--url", default=None, help="dashboards address to ask")
    check.add_argument("--json", action="store_true")


def evaluate(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from dashboards.triggers.engine import Evaluator, overall

    answer, url, headers = ask_dashboards(
        settings, args.url, f"/api/v1/migrations/{args.migration}/triggers"
    )
    if answer is not None:
        if answer.status_code != 200:
            raise ConfigError(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
        found: dict[str, Any] = answer.json()
        if not found["evaluations"]:  # no evidence: a misspelt name says so
            check_migration(args.migration, settings, lambda: names_from_api(url, headers))
        return found, url
    with open_for_reading(settings) as store:
        check_migration(args.migration, settings, store.migration_names)
        evaluator = Evaluator(settings.triggers, lambda: store)
        evaluations = evaluator.evaluate(migration=args.migration, record=False, notify=False)
    return {
        "migration": args.migration,
        "decision": overall(evaluations).value,
        "evaluations": [e.as_dict() for e in evaluations],
    }, settings.store.url


def render(found: dict[str, Any], source: str, out: TextIO) -> None:
    out.write(f"{found['migration']}: {found['decision']} (from {source})\n")
    for e in found["evaluations"]:
        where = e["arm"] + ("" if e["segment"] == "*" else f" [{e['segment']}]")
        out.write(
            f"  {e['decision']:<5}  {e['rule']:<24} {where:<28} {e['metric']} {e['estimate']:.4g}"
            f" ({e['lower']:.4g} to {e['upper']:.4g}, n={e['n']}) against {e['limit']:.4g}\n"
        )
    if not found["evaluations"]:
        out.write(
            "  no rule applies to this migration, or it has no pairs in the rules' windows:"
            " hold (no evidence is not a pass)\n"
        )


def run(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        found, source = evaluate(settings, args)
    except UnknownMigrationError as exc:
        sys.stderr.write(f"shadowjudge: {exc}\n")
        return HOLD
    except (ConfigError, StoreError) as exc:
        sys.stderr.write(f"shadowjudge: triggers check failed: {exc}\n")
        return FAILED
    if args.json:
        out.write(json.dumps(found, indent=2, default=str) + "\n")
    else:
        render(found, source, out)
    return EXIT[found["decision"]]
