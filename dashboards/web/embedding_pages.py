"""An embedding migration's page and its JSON twin.

`GET /migrations/{name}/embeddings?arm=A&least=N` shows the report of
`dashboards.analysis.embedding_migration` over the reference set its traffic built: the verdict
card, agreement per segment with intervals (server-side SVG), the least-agreeing queries with
both neighbour lists side by side, the migration's thresholds before and after, adapter
retention, and the reference set read. `GET /api/v1/migrations/{name}/embeddings` returns the
same object `shadowjudge embeddings report --json` prints (that command reads it from here when
a `run` holds the store), and `GET /api/v1/migrations/{name}/embeddings/adapter.npz` the fitted
adapter with the higher retention (`--adapter-out`), 409 when none could be measured.
`POST /api/v1/migrations/{name}/embeddings` with a JSON body (`arm`, `least`, `labels`: a
team's relevance labels as `[query hash, document hash, relevant]`, `keep`) returns the report
with, per threshold, the cut-off that keeps the old precision or recall on those pairs
(`embeddings report --labels` sends it): a computation over what the store holds, which changes
nothing, so it needs no more than a read; it is built each time (labels differ per call).

The texts come from traffic: every one is escaped by the template's autoescaping, so a
`<script>` in a query is shown as text. Vectors never leave the report builder: neither the
page nor the API carries one. The LLM judge is not asked from here (a page view must not call a
paid model); `embeddings report --judge` asks it.

A report is kept (the last `KEPT` of them) and shown again while nothing it was built from has
changed: the arm's reference rows (`reference_version`: their count within the retention window
and their latest insert) and its replays (`read_replays`); building one reads every vector of
the set and takes seconds at a few thousand texts, the check two small queries.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from dashboards.analysis.embedding_migration import (
    EmbeddingMigration,
    UnknownArmError,
    choose_arm,
    read_replays,
    traffic_report,
)
from dashboards.analysis.embedding_reference import reference_version
from dashboards.analysis.queries import Reader
from dashboards.web.charts.interval import Band, IntervalRow, interval_chart

MAX_LEAST = 100
#: Labelled pairs one POST may carry.
MAX_LABELS = 100_000
#: Reports kept for views that find nothing changed.
KEPT = 16

Page = Callable[[Request, str, dict[str, Any]], Response]
Json = Callable[[Any], Response]


class LabelledQuery(BaseModel):
    """The body of `POST /api/v1/migrations/{name}/embeddings`."""

    arm: str | None = None
    least: int = 10
    labels: list[tuple[str, str, bool]] = Field(max_length=MAX_LABELS)
    keep: Literal["precision", "recall"] = "precision"


def add_routes(
    app: FastAPI,
    source: Callable[[], Reader],
    migrations: Mapping[str, EmbeddingMigration],
    page: Page,
    as_json: Json,
) -> None:
    kept: OrderedDict[tuple[object, ...], dict[str, Any]] = OrderedDict()
    lock = threading.Lock()  # the handlers run in a thread pool

    def report(
        name: str,
        arm: str | None,
        least: int,
        adapter_out: Path | None = None,
        labelled: LabelledQuery | None = None,
    ) -> dict[str, Any]:
        migration = migrations.get(name)
        if migration is None:
            raise HTTPException(
                404, f"migration {name!r} is not an embedding migration in this configuration"
            )
        if not 1 <= least <= MAX_LEAST:
            raise HTTPException(400, f"least {least}: expected 1 to {MAX_LEAST}")
        try:
            chosen = choose_arm(migration, arm or None)
        except UnknownArmError as exc:
            raise HTTPException(400, str(exc)) from exc
        reader = source()
        if adapter_out is not None or labelled is not None:  # built for this call alone
            built, _ = traffic_report(
                reader,
                migration,
                chosen,
                least=least,
                adapter_out=adapter_out,
                labels=None if labelled is None else labelled.labels,
                keep="precision" if labelled is None else labelled.keep,
            )
            return built
        version = reference_version(
            reader, migration.name, chosen, retention_days=migration.retention_days
        )
        replays = read_replays(reader, migration, chosen)
        key = (name, chosen, least, version, repr(replays))
        with lock:
            found = kept.get(key)
            if found is not None:
                kept.move_to_end(key)
                return found
        found, _ = traffic_report(reader, migration, chosen, least=least, replays=replays)
        with lock:
            kept[key] = found
            while len(kept) > KEPT:
                kept.popitem(last=False)
        return found

    @app.get("/migrations/{name}/embeddings", response_class=HTMLResponse)
    def embeddings_page(
        request: Request, name: str, arm: str | None = None, least: int = 10
    ) -> Response:
        found = report(name, arm, least)
        context = {
            "r": found,
            "arms": migrations[name].arms,
            "charts": charts(found),
        }
        return page(request, "embeddings.html", context)

    @app.get("/api/v1/migrations/{name}/embeddings")
    def api_embeddings(name: str, arm: str | None = None, least: int = 10) -> Response:
        return as_json(report(name, arm, least))

    @app.post("/api/v1/migrations/{name}/embeddings")
    def api_embeddings_labelled(name: str, body: LabelledQuery) -> Response:
        return as_json(report(name, body.arm, body.least, labelled=body))

    @app.get("/api/v1/migrations/{name}/embeddings/adapter.npz")
    def api_adapter(name: str, arm: str | None = None) -> Response:
        """The adapter with the higher retention as `.npz` (a map between the two spaces, no
        vector of any text); 409 with the reason when retention could not be measured."""
        with tempfile.TemporaryDirectory(prefix="shadowjudge-adapter-") as folder:
            path = Path(folder) / "adapter.npz"
            found = report(name, arm, 1, adapter_out=path)
            adapter = found.get("adapter") or {}
            if not adapter.get("measured"):
                why = adapter.get("reason") or found.get("insufficient") or "not measured"
                raise HTTPException(409, f"no adapter for {name}/{found['arm']}: {why}")
            body = path.read_bytes()
        kind = adapter["written"]["kind"]
        return Response(
            body,
            media_type="application/octet-stream",
            headers={
                "content-disposition": f'attachment; filename="{name}-{found["arm"]}-{kind}.npz"',
                "x-adapter-kind": kind,
            },
        )


def _row(label: str, figure: dict[str, Any]) -> IntervalRow:
    return IntervalRow(label, figure["mean"], figure["low"], figure["high"], figure["n"])


def charts(found: dict[str, Any]) -> dict[str, Any]:
    """The page's charts: overlap@10 per segment against the verdict's reference points, and
    the adapters' retention."""
    if found.get("verdict") is None:
        return {}
    from judge.embeddings import ReferencePoints

    ref = ReferencePoints()
    agreed = found["agreement"]
    rows = [_row("all queries", agreed["overlap"])]
    rows += [_row(label, figures["overlap"]) for label, figures in agreed["segments"].items()]
    safe_from = ref.same_family - ref.same_family_margin
    bands = [
        Band(
            f"same family ({ref.same_family:.3f}; safe from {safe_from:.3f})",
            safe_from,
            ref.same_family,
        ),
        Band(
            f"cross family ({ref.cross_family_low:.2f}–{ref.cross_family_high:.2f})",
            ref.cross_family_low,
            ref.cross_family_high + ref.cross_family_margin,
        ),
    ]
    made = {
        "agreement": interval_chart(
            rows, title=f"overlap@{found['k']} by segment, 95% interval", bands=bands
        )
    }
    adapter = found["adapter"]
    if adapter.get("measured"):
        made["adapter"] = interval_chart(
            [_row(kind, adapter[kind]["retention"]) for kind in ("ridge", "procrustes")],
            title=f"adapter retention of the old top {found['k']}, held-out queries",
        )
    return made
