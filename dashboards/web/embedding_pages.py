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
page nor the API carries one.

**The LLM judge** ("which list serves this query better", `dashboards.analysis.list_judge`) is
never asked by a page view: a view shows the verdicts stored, merged into the least-agreeing
queries and the verdict card. Asking is a write, by request:
`POST /api/v1/migrations/{name}/embeddings/judge` (JSON `arm`, `least`) asks the configured
judge about the current least-agreeing queries it has given no verdict on, stores the verdicts
and returns the report with them (`asked`: how many queries it asked about; a second POST on
the same lists asks nothing); `POST /migrations/{name}/embeddings/judge` is the page's button.
With no judge configured, or one that cannot be built (its key variable unset), both answer 409
with the reason. `POST /api/v1/migrations/{name}/embeddings/verdicts` stores the verdicts
`embeddings report --judge` got in its own process (hashes, verdict, reason; the model pair is
the one this store holds now). The API posts are allowed as the rollout's are: with the token,
or on a loopback listener from a client sending `x-shadowjudge-client` (the command); the form
needs the token (cookie, CSRF-checked). One round of questions at a time, so two clicks do not
pay twice.

A report is kept (the last `KEPT` of them) and shown again while nothing it was built from has
changed: the arm's reference rows (`reference_version`: their count within the retention window
and their latest insert), its replays (`read_replays`) and its stored list verdicts
(`verdicts_version`: their count and latest `judged_at`); building one reads every vector of
the set and takes seconds at a few thousand texts, the check three small queries.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from dashboards.analysis import list_judge
from dashboards.analysis.embedding_migration import (
    EmbeddingMigration,
    UnknownArmError,
    choose_arm,
    read_replays,
    traffic_report,
)
from dashboards.analysis.embedding_reference import current_models, reference_version
from dashboards.web.charts.interval import Band, IntervalRow, interval_chart
from judge.store.list_verdicts import MAX_REASON, ListVerdictRow, verdicts_version
from mirror.errors import ConfigError

if TYPE_CHECKING:
    from judge.scorers.pairwise import PairwiseJudge

MAX_LEAST = 100
#: Labelled pairs one POST may carry.
MAX_LABELS = 100_000
#: Reports kept for views that find nothing changed.
KEPT = 16

Page = Callable[[Request, str, dict[str, Any]], Response]
Json = Callable[[Any], Response]
#: Refuses (403) an API write the caller may not make; names what was asked.
WriteCheck = Callable[[Request, str], None]
NO_JUDGE = (
    "no LLM judge configured: set judge.provider (a provider of the settings) and judge.model,"
    " with the provider's api_key_env set, and restart; or run `shadowjudge embeddings report"
    " --migration NAME --judge` with settings that have one"
)
HEX64 = r"^[0-9a-f]{64}$"


class LabelledQuery(BaseModel):
    """The body of `POST /api/v1/migrations/{name}/embeddings`."""

    arm: str | None = None
    least: int = 10
    labels: list[tuple[str, str, bool]] = Field(max_length=MAX_LABELS)
    keep: Literal["precision", "recall"] = "precision"


class JudgeQuery(BaseModel):
    """The body of `POST /api/v1/migrations/{name}/embeddings/judge`."""

    arm: str | None = None
    least: int = 10


class GivenVerdict(BaseModel):
    query_hash: str = Field(pattern=HEX64)
    lists_digest: str = Field(pattern=HEX64)
    judge: str = Field(min_length=1, max_length=200)
    verdict: Literal["better", "worse", "same", "error"]
    reason: str = ""


class GivenVerdicts(BaseModel):
    """The body of `POST /api/v1/migrations/{name}/embeddings/verdicts`."""

    arm: str | None = None
    prompt_version: str
    verdicts: list[GivenVerdict] = Field(max_length=MAX_LEAST)


def add_routes(
    app: FastAPI,
    source: Callable[[], list_judge.VerdictStore],
    migrations: Mapping[str, EmbeddingMigration],
    page: Page,
    as_json: Json,
    *,
    judge: Callable[[], PairwiseJudge] | None = None,
    may_write: WriteCheck | None = None,
    form_writes: bool = False,
) -> None:
    """The routes. `judge` makes the configured LLM judge (None: none configured);
    `may_write` refuses an API write the caller may not make; `form_writes`: the page's form
    may write (a token is configured)."""
    kept: OrderedDict[tuple[object, ...], dict[str, Any]] = OrderedDict()
    lock = threading.Lock()  # the handlers run in a thread pool
    judging = threading.Lock()  # one round of questions at a time

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
        judged = verdicts_version(reader, migration.name, chosen, days=migration.retention_days)
        key = (name, chosen, least, version, repr(replays), judged)
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
            "least": least,
            "judge_configured": judge is not None,
            "no_judge": NO_JUDGE,
            "form_writes": form_writes,
        }
        return page(request, "embeddings.html", context)

    @app.get("/api/v1/migrations/{name}/embeddings")
    def api_embeddings(name: str, arm: str | None = None, least: int = 10) -> Response:
        return as_json(report(name, arm, least))

    @app.post("/api/v1/migrations/{name}/embeddings")
    def api_embeddings_labelled(name: str, body: LabelledQuery) -> Response:
        return as_json(report(name, body.arm, body.least, labelled=body))

    def ask_judge(name: str, arm: str | None, least: int) -> dict[str, Any]:
        """Ask the judge about the least-agreeing queries it has no verdict on, store the
        verdicts, and return the report with them and `asked`."""
        if judge is None:
            raise HTTPException(409, NO_JUDGE)
        found = report(name, arm, least)
        if found["verdict"] is None:
            raise HTTPException(409, f"nothing to judge yet: {found['insufficient']}")
        try:
            asking = judge()
        except ConfigError as exc:
            raise HTTPException(409, f"the LLM judge cannot be asked: {exc}") from exc
        migration = migrations[name]
        with judging:
            found = report(name, arm, least)  # what a round that held the lock has stored
            items = copy.deepcopy(found["least_agreeing"])  # the kept report stays as it is
            todo = list_judge.unjudged(asking.identity, items)
            if todo:
                asyncio.run(list_judge.ask(asking, todo))
                kept_all = list_judge.keep_verdicts(
                    source(),
                    todo,
                    migration=name,
                    arm=found["arm"],
                    retention_days=migration.retention_days,
                )
                if not kept_all:
                    raise HTTPException(409, "the reference set changed: nothing stored now")
            return {**report(name, arm, least), "asked": len(todo)}

    @app.post("/api/v1/migrations/{name}/embeddings/judge")
    def api_judge(name: str, body: JudgeQuery, request: Request) -> Response:
        if may_write is not None:
            may_write(request, "asking the LLM judge")
        return as_json(ask_judge(name, body.arm, body.least))

    @app.post("/migrations/{name}/embeddings/judge")
    def judge_form(name: str, arm: str = Form(""), least: int = Form(10)) -> Response:
        """The page's button (cookie-authenticated, CSRF-checked)."""
        if not form_writes:
            raise HTTPException(
                403, "asking the LLM judge is a write: set dashboards.token_env to enable it"
            )
        found = ask_judge(name, arm or None, least)
        query = urlencode({"arm": found["arm"], "least": least})
        return RedirectResponse(
            f"/migrations/{quote(name, safe='')}/embeddings?{query}#judge", status_code=303
        )

    @app.post("/api/v1/migrations/{name}/embeddings/verdicts")
    def api_verdicts(name: str, body: GivenVerdicts, request: Request) -> Response:
        """Verdicts the command's judge gave (`embeddings report --judge` through this app)."""
        if may_write is not None:
            may_write(request, "list verdicts")
        migration = migrations.get(name)
        if migration is None:
            raise HTTPException(
                404, f"migration {name!r} is not an embedding migration in this configuration"
            )
        try:
            chosen = choose_arm(migration, body.arm or None)
        except UnknownArmError as exc:
            raise HTTPException(400, str(exc)) from exc
        if body.prompt_version != list_judge.PROMPT_VERSION:
            raise HTTPException(
                409,
                f"prompt_version {body.prompt_version!r}: this app asks"
                f" {list_judge.PROMPT_VERSION!r}; upgrade the command or the app",
            )
        models = current_models(source(), name, chosen, retention_days=migration.retention_days)
        if models is None:
            raise HTTPException(409, f"no reference set stored for {name}/{chosen}")
        now = datetime.now(UTC)
        rows = [
            ListVerdictRow(
                name,
                chosen,
                *models,
                query_hash=v.query_hash,
                lists_digest=v.lists_digest,
                judge=v.judge,
                prompt_version=body.prompt_version,
                verdict=list_judge.STORED[v.verdict],
                reason=v.reason[:MAX_REASON],
                judged_at=now,
                retention_days=migration.retention_days,
            )  # fmt: skip
            for v in body.verdicts
        ]
        return as_json({"written": source().insert_list_verdicts(rows)})

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
