"""The daily digest: one day's headline figures, trigger states and worst disagreements, as HTML
(standalone: inline styles and SVG, no script, fit for an e-mail), as Markdown, and as a Slack
message.

`build_digest` gathers from an `Analyst` and the review queue (the store); `digest_from_api`
gathers the same through a running dashboards' JSON API (when `run` holds the embedded store).
Links point at `base_url`, the dashboards address the team opens.

Slack: an incoming-webhook URL is a secret, so it is read from the environment variable that
`dashboards.digest_slack_env` names, and it never appears in a file or a log line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib.resources import files
from typing import Any
from urllib.parse import quote

import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dashboards.analysis.queries import Reader
from dashboards.analysis.service import Analyst, MigrationAnalysis
from dashboards.analysis.window import parse_window
from dashboards.review.queue import queue
from dashboards.web import views
from dashboards.web.charts import stacked_bar
from mirror.errors import ConfigError

WORST = 10


@dataclass
class Digest:
    day: str
    base_url: str
    migrations: list[MigrationAnalysis]
    #: migration -> up to ten worst unlabelled disagreements (queue items, as dicts)
    worst: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def pair_url(self, item: dict[str, Any]) -> str:
        path = "/".join(quote(str(item[k]), safe="") for k in ("migration", "arm", "call_id"))
        return f"{self.base_url}/pairs/{path}"

    def migration_url(self, name: str) -> str:
        return f"{self.base_url}/migrations/{quote(name, safe='')}?window={self.day}"


def build_digest(analyst: Analyst, reader: Reader, day: str, base_url: str) -> Digest:
    window = parse_window(day)
    migrations = analyst.analyse(window)
    worst = {
        m.migration: [
            asdict(item)
            for item in queue(
                reader, window, migration=m.migration, judge_version=m.judge_version, limit=WORST
            )
        ]
        for m in migrations
    }
    return Digest(day, base_url.rstrip("/"), migrations, worst)


def digest_from_api(url: str, day: str, headers: dict[str, str]) -> Digest:
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        listing = client.get("/api/v1/migrations", params={"window": day})
        listing.raise_for_status()
        migrations = [MigrationAnalysis.model_validate(m) for m in listing.json()["migrations"]]
        worst = {}
        for m in migrations:
            found = client.get(
                "/api/v1/review",
                params={"window": day, "migration": m.migration, "limit": WORST},
            )
            found.raise_for_status()
            worst[m.migration] = found.json()["items"]
    return Digest(day, url.rstrip("/"), migrations, worst)


def _environment(autoescape: bool) -> Environment:
    folder = str(files("dashboards.review").joinpath("templates"))
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]) if autoescape else False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    views.install(env)
    env.filters["md"] = markdown_text
    return env


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def markdown_text(text: str) -> str:
    """Text that Markdown shows as written: markup characters escaped, no raw HTML, one line."""
    text = " ".join(str(text).split())
    return _MARKDOWN.sub(r"\\\1", text).replace("<", "&lt;").replace(">", "&gt;")


def render_html(digest: Digest) -> str:
    charts = {
        (m.migration, arm.arm): stacked_bar(
            [(k.replace("_", " "), float(v)) for k, v in arm.verdicts.items()],
            title=f"Verdicts of {arm.arm}",
        )
        for m in digest.migrations
        for arm in m.arms
    }
    return _environment(True).get_template("digest.html").render(d=digest, charts=charts)


def render_markdown(digest: Digest) -> str:
    return _environment(False).get_template("digest.md").render(d=digest)


def slack_text(digest: Digest) -> str:
    """Slack's own markup (mrkdwn): `*bold*`, `<url|text>` links."""
    lines = [f"*shadowjudge digest {digest.day}*"]
    for m in digest.migrations:
        lines.append(f"*<{digest.migration_url(m.migration)}|{m.migration}>*")
        for arm in m.arms:
            states = ", ".join(f"{t.rule} {t.decision}" for t in arm.triggers) or "no trigger"
            lines.append(
                f"• {arm.arm}: {views.num(arm.pairs)} pairs, equivalent"
                f" {views.interval(arm.equivalence)}"
                + (
                    f" (noise {views.interval(arm.noise_equivalence)})"
                    if arm.noise_equivalence
                    else ""
                )
                + f", worse {views.interval(arm.worse)}, {states}"
            )
        for item in digest.worst.get(m.migration, [])[:5]:
            lines.append(f"   ◦ <{digest.pair_url(item)}|{item['kind']}> {item['reason'][:80]}")
    return "\n".join(lines)


def post_to_slack(webhook: str, digest: Digest) -> None:
    """One POST to an incoming webhook; a ConfigError says what Slack answered, never the URL."""
    try:
        answer = httpx.post(webhook, json={"text": slack_text(digest)}, timeout=30)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"slack: the webhook could not be reached ({type(exc).__name__})"
        ) from None
    if answer.status_code != 200:
        raise ConfigError(
            f"slack: the webhook answered HTTP {answer.status_code}: {answer.text[:200]}"
        )


def default_day(today: date) -> str:
    return date.fromordinal(today.toordinal() - 1).isoformat()
