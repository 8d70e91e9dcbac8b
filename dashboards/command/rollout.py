"""`shadowjudge rollout status|set|rollback`: move a candidate's served weight on a running
`run` (or `dashboards`), in one call, no deploy.

The command asks the process that holds the weights, through its API
(`POST /api/v1/migrations/{name}/rollout`, `GET /api/v1/rollout`), at `--url` or the local
`dashboards.listen`: that process applies the change, publishes it to the sidecars and audits
it. With `dashboards.token_env` set the token is sent as a bearer token; without one, the API
accepts the change on a loopback listener from this command (it sends `x-shadowjudge-client`).
Exit codes: 0 done; 2 a bad name or weight (the message lists the known migrations) or nothing
answers; 1 the API refused otherwise (no token, say).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any, TextIO

from dashboards.settings import Settings
from mirror.errors import ConfigError


def add_parser(commands: Any) -> None:
    rollout = commands.add_parser(
        "rollout", help="staged rollout: status, set a weight, roll back (on a running run)"
    )
    actions = rollout.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="each migration's served weight and its steps")
    changed = actions.add_parser("set", help="serve WEIGHT (0.3 or 30%%) from the candidate")
    changed.add_argument("migration")
    changed.add_argument("weight")
    back = actions.add_parser("rollback", help="weight 0 at once: all traffic to the primary")
    back.add_argument("migration")
    for parser in (status, changed, back):
        parser.add_argument("--url", default=None, help="dashboards address (default: local)")
    for parser in (changed, back):
        parser.add_argument("--reason", default="", help="kept in the audit trail")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid-{os.getuid()}"


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    import httpx

    out = out or sys.stdout

    url = (args.url or f"http://{settings.dashboards.listen}").rstrip("/")
    headers = {"x-shadowjudge-client": "cli"}
    if settings.dashboards.token_env:
        headers["Authorization"] = f"Bearer {settings.dashboards.token()}"
    actor = f"cli:{_who()}"
    try:
        if args.action == "status":
            answer = httpx.get(f"{url}/api/v1/rollout", headers=headers, timeout=10)
        else:
            weight = "0" if args.action == "rollback" else args.weight
            answer = httpx.post(
                f"{url}/api/v1/migrations/{args.migration}/rollout",
                json={"weight": weight, "reason": args.reason, "actor": actor},
                headers=headers,
                timeout=10,
            )
    except httpx.TransportError as exc:
        raise ConfigError(
            f"{url}: nothing answers ({exc}); rollout changes go through a running "
            "`shadowjudge run` or `dashboards` (dashboards.listen, or --url)"
        ) from exc
    if answer.status_code != 200:
        try:
            detail = answer.json().get("error", answer.text)
        except ValueError:
            detail = answer.text
        print(f"shadowjudge rollout: {detail}", file=sys.stderr)  # noqa: T201
        return 2 if answer.status_code == 400 else 1  # 400: the name or weight given
    data = answer.json()
    if args.action == "status":
        rows = data["rollouts"]
        if not rows:
            print("no migration declares rollout:", file=out)  # noqa: T201
        for row in rows:
            steps = " → ".join(f"{s:.0%}" for s in row["steps"]) or "none"
            print(  # noqa: T201
                f"{row['migration']}/{row['arm']}: {row['weight']:.0%} "
                f"(was {row['previous']:.0%}, by {row['actor']}, {row['changed_at'] or 'config'})"
                f"; steps {steps}",
                file=out,
            )
        return 0
    print(  # noqa: T201
        f"{data['migration']}/{data['arm']}: {data['previous']:.0%} → {data['weight']:.0%}",
        file=out,
    )
    if not data.get("published", True):
        print(  # noqa: T201
            "shadowjudge rollout: applied in that process, but not published to the control "
            f"topic ({data.get('unpublished_reason')}): sidecars in other processes keep their "
            "weight until it is set again",
            file=sys.stderr,
        )
        return 1
    return 0
