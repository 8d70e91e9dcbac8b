"""`shadowjudge review digest --date D`: the day's digest as HTML and Markdown files, and
optionally a Slack message.

Like `report`, it asks the dashboards' API when something answers there (a running `run` holds
the embedded store) and reads the store itself otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboards.command.preflight import open_for_reading
from mirror.errors import ConfigError

if TYPE_CHECKING:  # the digest, the analysis and httpx load when a digest is made
    from dashboards.review.digest import Digest
    from dashboards.settings import Settings


def add_parser(commands: Any) -> None:
    review = commands.add_parser("review", help="the daily review: `review digest`")
    actions = review.add_subparsers(dest="action", required=True)
    digest = actions.add_parser("digest", help="one day's digest as HTML and Markdown (and Slack)")
    digest.add_argument("--date", default=None, help="YYYY-MM-DD, UTC (default: yesterday)")
    digest.add_argument("--out", type=Path, default=Path("."), help="folder for the two files")
    digest.add_argument(
        "--slack", action="store_true", help="post it to dashboards.digest_slack_env's webhook"
    )
    digest.add_argument("--url", default=None, help="dashboards address to read from")


def gather(settings: Settings, args: argparse.Namespace, day: str) -> Digest:
    import httpx

    from dashboards.review.digest import build_digest, digest_from_api

    url = args.url or f"http://{settings.dashboards.listen}"
    token = settings.dashboards.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return digest_from_api(url, day, headers)
    except httpx.TransportError as exc:
        if args.url:
            raise ConfigError(f"--url {args.url}: {exc}") from exc
    except httpx.HTTPStatusError as exc:
        answer = exc.response
        raise ConfigError(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}") from exc
    with open_for_reading(settings) as store:
        from dashboards.analysis.service import Analyst
        from dashboards.command.serve import web_config  # the pages' server: 0.5 s to import

        config = web_config(settings)
        analyst = Analyst(store, sampling=config.sampling, models=config.models)
        return build_digest(analyst, store, day, settings.dashboards.url)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from dashboards.review.digest import default_day, post_to_slack, render_html, render_markdown

    logging.getLogger("httpx").setLevel(logging.WARNING)
    day = args.date or default_day(datetime.now(UTC).date())
    webhook = ""
    if args.slack:
        name = settings.dashboards.digest_slack_env
        if not name:
            raise ConfigError("--slack: set dashboards.digest_slack_env to the webhook's variable")
        webhook = os.environ.get(name, "")
        if not webhook:
            raise ConfigError(
                f"dashboards.digest_slack_env: environment variable {name} is not set"
            )
    digest = gather(settings, args, day)
    digest.base_url = settings.dashboards.url
    args.out.mkdir(parents=True, exist_ok=True)
    html, markdown = args.out / f"digest-{day}.html", args.out / f"digest-{day}.md"
    html.write_text(render_html(digest), encoding="utf-8")
    markdown.write_text(render_markdown(digest), encoding="utf-8")
    sys.stdout.write(f"wrote {html} and {markdown}\n")
    if webhook:
        post_to_slack(webhook, digest)
        sys.stdout.write("posted to Slack\n")
    return 0
