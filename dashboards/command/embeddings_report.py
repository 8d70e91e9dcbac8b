"""`shadowjudge embeddings report --migration NAME`: an embedding migration's verdict from the
reference set its traffic built (`dashboards.analysis.embedding_migration`).

    shadowjudge embeddings report --migration NAME [--arm A] [--judge] [--json] [--least N]
        [--labels L.jsonl [--keep recall]] [--url http://HOST:PORT]

Where the report comes from, as for `shadowjudge report`: `--url` (a dashboards address) when
given; otherwise the local dashboards address from the settings when something answers there
(a running `run` holds the embedded store, so asking its API is the only way in); otherwise the
store itself, read-only. Either way it is the same object (`GET
/api/v1/migrations/{name}/embeddings`), which `--json` prints as it is.

The migration must be in the settings with an `embeddings:` section (its thresholds, its
reference size and retention are read there) and `--arm` one of its arms (default: its first);
anything else exits 2 naming the flag. The report carries the LLM judge's verdicts already
stored for its least-agreeing queries (`dashboards.analysis.list_judge`). `--judge` asks the
settings' LLM judge here, in this process (both orders, only a preference surviving the swap
counts), about the least-agreeing queries it has given no verdict on for these lists, redoes
the verdict card with the split, and keeps the verdicts it got: in the store when it read the
store, else through the dashboards it read (`POST .../embeddings/verdicts`, with the token or,
on a loopback listener, as this command), so the page and API show them. A page view never
calls a paid model; the page's own judge button asks the dashboards' judge.

`--labels` is the team's own relevance labels (JSONL, one pair a line: `query` and `document`
as texts, or `query_id` and `document_id` as the report's ids, and `relevant`): texts are
hashed here as the runner keys them (the app's prefix stripped) and only the hashes are sent;
the report then gives, per threshold, the cut-off keeping the old precision (`--keep recall`:
recall) over the labelled pairs whose two texts are in the reference set, and says how many
were. The store's own labels (the judge's, the reviewers') are about chat answers, not
retrieval, so they are not used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dashboards.analysis import list_judge
from dashboards.command.embeddings_compare_input import labelled_lines
from dashboards.command.embeddings_judge import configured_judge
from mirror.errors import ConfigError

if TYPE_CHECKING:  # the analysis (numpy, scipy) loads when a report is made
    from dashboards.analysis.embedding_migration import EmbeddingMigration
    from dashboards.settings import Settings


def add_parser(actions: Any) -> None:
    report = actions.add_parser(
        "report",
        help="an embedding migration's verdict from its traffic (the reference set)",
        description="Agreement, the least-agreeing queries, the migration's thresholds"
        " recalibrated, adapter viability and the verdict, over the reference set sampled"
        " from the migration's /v1/embeddings traffic.",
    )
    report.add_argument("--migration", required=True)
    report.add_argument("--arm", default=None, help="the candidate arm (default: the first)")
    report.add_argument("--least", type=int, default=10, help="least-agreeing queries shown")
    report.add_argument("--judge", action="store_true", help="ask the settings' LLM judge")
    report.add_argument("--json", action="store_true")
    report.add_argument(
        "--adapter-out", type=Path, default=None, metavar="FILE.npz",
        help="write the adapter with the higher retention (when it is measured)",
    )  # fmt: skip
    report.add_argument(
        "--labels", type=Path, default=None, metavar="L.jsonl",
        help="relevance labels: query, document (texts) or query_id, document_id; relevant",
    )  # fmt: skip
    report.add_argument("--keep", choices=("precision", "recall"), default="precision")
    report.add_argument(
        "--url", default=None, help="dashboards address (default: the local one, if it answers)"
    )


def embedding_migration(settings: Settings, name: str) -> EmbeddingMigration:
    """The named migration's embedding settings; a ConfigError naming `--migration`."""
    from dashboards.analysis.embedding_migration import EmbeddingMigration

    found = next((m for m in settings.migrations if m.name == name), None)
    if found is None:
        known = ", ".join(m.name for m in settings.migrations) or "none in the settings"
        raise ConfigError(f"--migration {name}: no migration of that name; known: {known}")
    spec = EmbeddingMigration.from_settings(found)
    if spec is None:
        raise ConfigError(
            f"--migration {name}: not an embedding migration (it has no embeddings: section)"
        )
    return spec


def run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from dashboards.analysis import embedding_report
    from dashboards.analysis.embedding_migration import UnknownArmError, choose_arm

    migration = embedding_migration(settings, args.migration)
    try:
        arm = choose_arm(migration, args.arm)
    except UnknownArmError as exc:
        raise ConfigError(f"--arm {args.arm}: {exc}") from exc
    if args.least < 1:
        raise ConfigError("--least must be at least 1")
    judge = configured_judge(settings) if args.judge else None
    labels = read_labels(args.labels) if args.labels is not None else None
    report, source, via_api = fetch(settings, args, migration, arm, labels)
    if args.adapter_out is not None and "written" not in report.get("adapter", {}):
        why = report.get("insufficient") or report["adapter"]["reason"]
        raise ConfigError(f"--adapter-out {args.adapter_out}: not written: {why}")
    if judge is not None and report["verdict"] is not None:
        least = report["least_agreeing"]
        todo = list_judge.unjudged(judge.identity, least)
        asyncio.run(list_judge.ask(judge, todo))
        if todo:
            keep_verdicts(settings, args, migration, report, todo, via_api=via_api)
        report["judge"] = {**(list_judge.judge_section(least) or {}), "asked": len(todo)}
        overlap = embedding_report.estimate_of(report["agreement"]["overlap"])
        report["verdict"] = embedding_report.verdict(overlap, report["judge"])
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
        return 0
    from dashboards.command.embeddings_render import render

    render(report, out)
    out.write(f"\n(read from {source})\n")
    return 0


def keep_verdicts(
    settings: Settings,
    args: argparse.Namespace,
    migration: EmbeddingMigration,
    report: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    via_api: bool,
) -> None:
    """The verdicts just asked, into the store the report came from: directly, or through the
    dashboards that answered (hashes, verdict and reason; never a text)."""
    from dashboards.command.preflight import ask_dashboards, open_for_reading

    if via_api:
        verdicts = [
            {
                "query_hash": item["query_hash"],
                "lists_digest": list_judge.lists_digest(item),
                "judge": item["judge_model"],
                "verdict": item["judge"],
                "reason": item.get("judge_reason", ""),
            }
            for item in items
        ]
        answer, url, _ = ask_dashboards(
            settings,
            args.url,
            f"/api/v1/migrations/{migration.name}/embeddings/verdicts",
            body={
                "arm": report["arm"],
                "prompt_version": list_judge.PROMPT_VERSION,
                "verdicts": verdicts,
            },
            headers={"x-shadowjudge-client": "cli"},
        )
        if answer is None or answer.status_code != 200:
            said = "no answer" if answer is None else f"HTTP {answer.status_code}: {answer.text}"
            raise ConfigError(f"--judge: the verdicts were not kept: {url}: {said[:300]}")
        return
    with open_for_reading(settings) as store:
        store.migrate()  # an older store gains the verdicts table (as `run` would at start)
        if not list_judge.keep_verdicts(
            store,
            items,
            migration=migration.name,
            arm=report["arm"],
            retention_days=migration.retention_days,
        ):
            raise ConfigError("--judge: the reference set is gone: the verdicts were not kept")


def read_labels(path: Path) -> list[tuple[str, str, bool]]:
    """(query hash, document hash, relevant) per line of `--labels`; errors name the line."""
    from mirror.runner.embedding_arm import text_key

    pairs = []
    expected = '{"query" or "query_id", "document" or "document_id", "relevant": true|false}'
    for where, item in labelled_lines(path, expected):
        ends = []
        for side in ("query", "document"):
            text, id_ = item.get(side), item.get(f"{side}_id")
            if isinstance(text, str) and text:
                ends.append(text_key(text))
            elif isinstance(id_, str) and id_:
                ends.append(id_.lower())
            else:
                raise ConfigError(f"{where}: no {side} (a text) nor {side}_id (a report's id)")
        pairs.append((ends[0], ends[1], bool(item["relevant"])))
    if not pairs:
        raise ConfigError(f"--labels {path}: no labelled pairs")
    return pairs


def fetch(
    settings: Settings,
    args: argparse.Namespace,
    migration: EmbeddingMigration,
    arm: str,
    labels: list[tuple[str, str, bool]] | None = None,
) -> tuple[dict[str, Any], str, bool]:
    """The report, where it came from, and whether that was the dashboards' API."""
    from dashboards.analysis.embedding_migration import traffic_report
    from dashboards.command.preflight import ask_dashboards, open_for_reading, safe_url

    body = None
    if labels is not None:  # the hashes only: the texts stay here
        body = {"arm": arm, "least": args.least, "labels": labels, "keep": args.keep}
    answer, url, _ = ask_dashboards(
        settings,
        args.url,
        f"/api/v1/migrations/{migration.name}/embeddings",
        params={"arm": arm, "least": args.least},
        timeout=300,
        body=body,
    )
    if answer is not None:
        if answer.status_code != 200:
            raise ConfigError(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
        found: dict[str, Any] = answer.json()
        if args.adapter_out is not None and found.get("adapter", {}).get("measured"):
            _download_adapter(settings, args, migration, arm, found)
        return found, url, True
    with open_for_reading(settings) as store:
        report, _ = traffic_report(
            store,
            migration,
            arm,
            least=args.least,
            adapter_out=args.adapter_out,
            labels=labels,
            keep=args.keep,
        )
    return report, safe_url(settings.store.url), False


def _download_adapter(
    settings: Settings,
    args: argparse.Namespace,
    migration: EmbeddingMigration,
    arm: str,
    report: dict[str, Any],
) -> None:
    """`--adapter-out` through the API: the server fits the map on its reference set (the
    vectors never leave it) and sends the `.npz`."""
    from dashboards.command.preflight import ask_dashboards

    answer, url, _ = ask_dashboards(
        settings,
        args.url,
        f"/api/v1/migrations/{migration.name}/embeddings/adapter.npz",
        params={"arm": arm},
        timeout=300,
    )
    if answer is None or answer.status_code != 200:
        said = "no answer" if answer is None else f"HTTP {answer.status_code}: {answer.text[:300]}"
        raise ConfigError(f"--adapter-out {args.adapter_out}: {url}: {said}")
    args.adapter_out.write_bytes(answer.content)
    kind = answer.headers.get("x-adapter-kind", "")
    report["adapter"]["written"] = {"path": str(args.adapter_out), "kind": kind}
