"""The dashboards app: pages and their JSON twins over the store, for a team deciding a migration.

Every page has a JSON twin under `/api/v1/` (datasette's habit): the overview is
`/api/v1/migrations`, a migration's page is `/api/v1/migrations/{name}/analysis` (what Argo
Rollouts' web metric provider and Flagger webhooks read), a pair is `/api/v1/pairs/...`, the
review queue `/api/v1/review`. A migration's page and its twin take `?approximate=exclude`
(only the pairs whose candidate request was translated faithfully) or `only` (only the
approximate ones): the stats' `translation=` segment, or with `?segment=tenant=acme` the
segment crossed with it (`translation=faithful,tenant=acme`). Pages are Jinja2 templates with
autoescaping; charts are SVG drawn on the server (`dashboards.web.charts`); the only script is
`static/review.js`, the review queue's keyboard shortcuts, and every action also works as a
plain form.

Routes are synchronous functions: FastAPI runs them in its thread pool, and the store
serialises its calls (`judge.store.store.Store`). The store comes from `source`, which raises
`StoreError` while it is not open (inside `run`, until the judge has opened it): pages then
answer 503 with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp

from dashboards.analysis import translation
from dashboards.analysis.corrections import CALIBRATION, DISAGREEMENTS
from dashboards.analysis.embedding_migration import EmbeddingMigration
from dashboards.analysis.figures import Sampling
from dashboards.analysis.queries import Reader
from dashboards.analysis.service import Analyst, MigrationAnalysis
from dashboards.analysis.window import Window, parse_window, yesterday
from dashboards.review.queue import (
    ACTIONS,
    REVIEW_COLUMNS,
    label_for,
    pair_detail,
    queue,
    review_row,
)
from dashboards.rollout.control import RolloutController, RolloutError, parse_weight
from dashboards.triggers.config import TriggerSettings
from dashboards.triggers.engine import Evaluation, Evaluator, overall
from dashboards.triggers.rules import Decision
from dashboards.web import embedding_pages, views
from dashboards.web.access import COOKIE, protect, token_matches
from judge.errors import StoreError
from mirror.errors import ConfigError
from mirror.rollout import WeightChange

if TYPE_CHECKING:
    from judge.scorers.pairwise import PairwiseJudge
    from judge.store.list_verdicts import ListVerdictRow


class Writer(Reader, Protocol):
    def write(self, table: str, columns: Any, rows: Any) -> None: ...

    def insert_list_verdicts(self, rows: Sequence[ListVerdictRow]) -> int: ...


@dataclass
class WebConfig:
    """What the app needs besides the store; built from `Settings` by the command."""

    token: str | None = None
    sampling: dict[str, Sampling] = field(default_factory=dict)
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Signs the CSRF cookie; a fresh one per process unless given.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: The rules, for `/api/v1/migrations/{name}/triggers` (a read-only evaluation).
    triggers: TriggerSettings = field(default_factory=TriggerSettings)
    #: Served on `/metrics` (the trigger gauges when this process evaluates).
    registries: list[CollectorRegistry] = field(default_factory=list)
    #: The rollout controls, in the process that holds the weights (`run`, `dashboards`).
    rollout: RolloutController | None = None
    #: Without a token, rollout changes are accepted on a loopback listener from clients that
    #: send `x-shadowjudge-client` (the CLI): a header a web page cannot add cross-origin
    #: without a CORS preflight, which this app never grants.
    loopback: bool = True
    #: The embedding migrations (`embeddings:` in their settings), for their page and API.
    embeddings: dict[str, EmbeddingMigration] = field(default_factory=dict)
    #: Makes the configured LLM judge (None: none configured), asked by the embedding page's
    #: judge button and API about the least-agreeing queries; it may raise `ConfigError`.
    judge: Callable[[], PairwiseJudge] | None = None


def _templates() -> Jinja2Templates:
    folder = Path(str(files("dashboards.web").joinpath("templates")))
    templates = Jinja2Templates(directory=folder)
    views.install(templates.env)
    return templates


def create_app(source: Callable[[], Writer], config: WebConfig | None = None) -> ASGIApp:
    config = config or WebConfig()
    templates = _templates()
    app = FastAPI(title="shadowjudge dashboards", docs_url="/api/docs", redoc_url=None)
    static = Path(str(files("dashboards.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    def analyst() -> Analyst:
        return Analyst(source(), sampling=config.sampling, models=config.models)

    def window_of(text: str | None) -> Window:
        try:
            return parse_window(text)
        except ConfigError as exc:
            raise HTTPException(400, str(exc)) from None

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        csrf = request.scope.get("csrftoken")
        base = {
            "request": request,
            "csrftoken": csrf() if csrf else "",
            "can_write": config.token is not None,
            "now": datetime.now(UTC),
        }
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    def wants_json(request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return request.url.path.startswith("/api/") or accept.startswith("application/json")

    @app.exception_handler(StoreError)
    def store_down(request: Request, exc: StoreError) -> Response:
        reason = f"the store is not available: {exc}"
        if wants_json(request):
            return JSONResponse({"error": reason}, status_code=503)
        return page(request, "error.html", {"title": "Store unavailable", "reason": reason}, 503)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        if wants_json(request):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        context = {"title": f"Error {exc.status_code}", "reason": exc.detail}
        return page(request, "error.html", context, exc.status_code)

    # -- overview ----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, window: str | None = None) -> Response:
        found = window_of(window)
        migrations = analyst().analyse(found)
        context = {
            "window": found,
            "migrations": migrations,
            "embedding_migrations": sorted(config.embeddings),
        }
        return page(request, "overview.html", context)

    @app.get("/api/v1/migrations")
    def api_migrations(window: str | None = None) -> Response:
        found = analyst().analyse(window_of(window))
        return _json({"window": _window(window_of(window)), "migrations": found})

    # -- one migration -------------------------------------------------------------------------

    def one(
        name: str,
        window: str | None,
        segment: str,
        judge_version: str | None,
        approximate: str = "include",
    ) -> tuple[Window, MigrationAnalysis]:
        found = window_of(window)
        segment = translation_segment(segment, approximate)
        analysis = analyst().analysis(
            name, found, segment=segment, judge_version=judge_version or None
        )
        if analysis is None:
            raise HTTPException(404, f"no pairs of migration {name!r} in the window {found.label}")
        return found, analysis

    @app.get("/migrations/{name}", response_class=HTMLResponse)
    def migration_page(
        request: Request,
        name: str,
        window: str | None = None,
        segment: str = "*",
        judge_version: str | None = None,
        approximate: str = "include",
    ) -> Response:
        found, analysis = one(name, window, segment, judge_version, approximate)
        reader = analyst()
        chosen, approximate = chosen_filter(segment, approximate)
        context = {
            "window": found,
            "m": analysis,
            "embeddings": name in config.embeddings,
            "segment": chosen,
            "approximate": approximate,
            "segments": reader.segments(name, found, analysis.judge_version),
            "charts": views.migration_charts(reader.reader, found, analysis, config.triggers.rules),
            "rollout": next(
                (
                    r
                    for r in (config.rollout.status() if config.rollout else [])
                    if r.migration == name
                ),
                None,
            ),
        }
        return page(request, "migration.html", context)

    @app.get("/api/v1/migrations/{name}/analysis")
    def api_analysis(
        name: str,
        window: str | None = None,
        segment: str = "*",
        judge_version: str | None = None,
        approximate: str = "include",
    ) -> Response:
        found, analysis = one(name, window, segment, judge_version, approximate)
        segments = analyst().segments(name, found, analysis.judge_version)
        return _json({**analysis.model_dump(), "segments": segments})

    def evaluate_now(name: str) -> tuple[Decision, list[Evaluation]]:
        """Every rule's decision now, read-only: no audit row, no alert."""
        evaluator = Evaluator(config.triggers, source)
        evaluations = evaluator.evaluate(migration=name, record=False, notify=False)
        return overall(evaluations), evaluations

    @app.get("/api/v1/migrations/{name}/triggers")
    def api_triggers(name: str) -> Response:
        decision, evaluations = evaluate_now(name)
        found = [e.as_dict() for e in evaluations]
        return _json({"migration": name, "decision": decision.value, "evaluations": found})

    @app.get("/api/v1/migrations/{name}/gate")
    def api_gate(name: str) -> Response:
        """For webhooks that read only the status (Flagger): 409 when a rule fires, else 200."""
        decision, _ = evaluate_now(name)
        body = orjson.dumps({"migration": name, "decision": decision.value})
        status = 409 if decision is Decision.FIRE else 200
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/metrics")
    def metrics() -> Response:
        body = b"".join(generate_latest(r) for r in config.registries)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def may_write(request: Request, what: str) -> None:
        """An API write: with the token (the gate checked it), or from the command on a
        loopback listener (`x-shadowjudge-client`, which a cross-origin page cannot send)."""
        cli = request.headers.get("x-shadowjudge-client") is not None
        if config.token is None and not (config.loopback and cli):
            raise HTTPException(
                403,
                f"{what}: a write: set dashboards.token_env (or use the shadowjudge command on"
                " this machine)",
            )

    embedding_pages.add_routes(
        app,
        source,
        config.embeddings,
        page,
        _json,
        judge=config.judge,
        may_write=may_write,
        form_writes=config.token is not None,
    )

    # -- one pair --------------------------------------------------------------------------

    def detail(migration: str, arm: str, call_id: str) -> dict[str, Any]:
        found = pair_detail(source(), call_id=call_id, migration=migration, arm=arm)
        if not found["comparisons"]:
            raise HTTPException(404, f"no pair {call_id} of {migration}/{arm}")
        return found

    @app.get("/pairs/{migration}/{arm}/{call_id}", response_class=HTMLResponse)
    def pair_page(request: Request, migration: str, arm: str, call_id: str) -> Response:
        found = detail(migration, arm, call_id)
        context = {"key": (migration, arm, call_id), **views.pair_view(found)}
        return page(request, "pair.html", context)

    @app.get("/api/v1/pairs/{migration}/{arm}/{call_id}")
    def api_pair(migration: str, arm: str, call_id: str) -> Response:
        found = detail(migration, arm, call_id)
        pair = orjson.loads(found["pair_json"]) if found["pair_json"] else None
        return _json({**found, "pair_json": None, "pair": pair})

    # -- review ----------------------------------------------------------------------------

    def review_items(
        migration: str | None, window: str | None, which: str, limit: int
    ) -> tuple[Window, list[MigrationAnalysis], MigrationAnalysis | None, list[Any]]:
        found = window_of(window or yesterday())
        if which not in (DISAGREEMENTS, CALIBRATION):
            raise HTTPException(400, f"queue {which!r}: expected {DISAGREEMENTS} or {CALIBRATION}")
        all_migrations = analyst().analyse(found, detail=False)
        chosen = next((m for m in all_migrations if m.migration == migration), None)
        if chosen is None and all_migrations and migration is None:
            chosen = all_migrations[0]
        items = (
            queue(
                source(),
                found,
                migration=chosen.migration,
                judge_version=chosen.judge_version,
                which=which,
                limit=limit,
            )
            if chosen is not None
            else []
        )
        return found, all_migrations, chosen, items

    @app.get("/review", response_class=HTMLResponse)
    def review_page(
        request: Request,
        migration: str | None = None,
        window: str | None = None,
        queue_name: str = DISAGREEMENTS,
        limit: int = 100,
    ) -> Response:
        found, migrations, chosen, items = review_items(migration, window, queue_name, limit)
        detailed = (
            analyst().analysis(chosen.migration, found, judge_version=chosen.judge_version)
            if chosen is not None
            else None
        )
        context = {
            "window": found,
            "migrations": migrations,
            "chosen": detailed,
            "queue_name": queue_name,
            "groups": views.group_by_kind(items),
            "items": items,
            "actions": ACTIONS,
        }
        return page(request, "review.html", context)

    @app.get("/api/v1/review")
    def api_review(
        migration: str | None = None,
        window: str | None = None,
        queue_name: str = DISAGREEMENTS,
        limit: int = 100,
    ) -> Response:
        found, _, chosen, items = review_items(migration, window, queue_name, limit)
        return _json(
            {
                "window": _window(found),
                "migration": chosen.migration if chosen else None,
                "queue": queue_name,
                "items": items,
            }
        )

    @app.post("/review/label")
    def label(
        request: Request,
        call_id: str = Form(...),
        migration: str = Form(...),
        arm: str = Form(...),
        judge_version: str = Form(...),
        action: str = Form(...),
        queue_name: str = Form(DISAGREEMENTS),
        reviewer: str = Form("reviewer"),
        note: str = Form(""),
        kind: str = Form(""),
        back: str = Form("/review"),
    ) -> Response:
        if config.token is None:
            raise HTTPException(
                403, "labels are writes: set dashboards.token_env to enable them (see README)"
            )
        if action not in ACTIONS:
            raise HTTPException(400, f"action {action!r}: expected one of {', '.join(ACTIONS)}")
        store = source()
        found = pair_detail(store, call_id=call_id, migration=migration, arm=arm)
        current = next(
            (c for c in found["comparisons"] if c["judge_version"] == judge_version), None
        )
        if current is None:
            raise HTTPException(404, f"no pair {call_id} of {migration}/{arm} ({judge_version})")
        stored = label_for(action, current["verdict"], kind or views.kind_of(current))
        row = review_row(
            call_id=call_id,
            migration=migration,
            arm=arm,
            judge_version=judge_version,
            reviewer=reviewer,
            label=stored,
            note=note,
            queue_name=queue_name if queue_name in (DISAGREEMENTS, CALIBRATION) else "",
        )
        store.write("reviews", REVIEW_COLUMNS, [row])
        if "application/json" in request.headers.get("accept", ""):
            return _json({"call_id": call_id, "arm": arm, "label": stored})
        return RedirectResponse(_local(back, "/review"), status_code=303)

    # -- rollout ---------------------------------------------------------------------------

    def controller() -> RolloutController:
        if config.rollout is None:
            raise HTTPException(404, "no rollout controls in this process (run or dashboards)")
        return config.rollout

    def change_weight(name: str, weight: str, *, actor: str, reason: str) -> WeightChange:
        """A weight given as text (`0.3`, `30%`) set through the controller; 400 on bad input."""
        try:
            return controller().set(name, parse_weight(weight), actor=actor, reason=reason[:1000])
        except RolloutError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.post("/migrations/{name}/rollout")
    def rollout_form(
        name: str,
        weight: str = Form(...),
        reason: str = Form(""),
        who: str = Form("page"),
    ) -> Response:
        """The migration page's rollout form (cookie-authenticated, CSRF-checked)."""
        if config.token is None:
            raise HTTPException(
                403, "rollout changes are writes: set dashboards.token_env to enable them"
            )
        change_weight(name, weight, actor=f"page:{who[:60]}", reason=reason)
        return RedirectResponse(f"/migrations/{quote(name, safe='')}#rollout", status_code=303)

    @app.get("/api/v1/rollout")
    def rollout_status() -> Response:
        return _json({"rollouts": [s.as_dict() for s in controller().status()]})

    @app.post("/api/v1/migrations/{name}/rollout")
    async def rollout_change(name: str, request: Request) -> Response:
        cli = request.headers.get("x-shadowjudge-client") is not None
        if config.token is None and not (config.loopback and cli):
            raise HTTPException(
                403,
                "rollout changes are writes: set dashboards.token_env (or use the"
                " shadowjudge rollout command on this machine)",
            )
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(400, "expected a JSON object: {weight, reason, actor}") from exc
        if not isinstance(body, dict) or "weight" not in body:
            raise HTTPException(400, "expected a JSON object with weight (0.3 or '30%')")
        change = change_weight(
            name,
            str(body["weight"]),
            actor=str(body.get("actor") or "api")[:100],
            reason=str(body.get("reason") or ""),
        )
        return _json(
            {
                "migration": change.migration,
                "arm": change.arm,
                "weight": change.weight,
                "previous": change.previous,
                "actor": change.actor,
                "changed_at": change.changed_at.isoformat(),
                "published": controller().unpublished is None,
                "unpublished_reason": controller().unpublished,
            }
        )

    # -- access and health -----------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
        return page(request, "login.html", {"next": next, "failed": False})

    @app.post("/login")
    def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:  # noqa: A002
        if config.token is None or not token_matches(token, config.token):
            return page(request, "login.html", {"next": next, "failed": True}, 401)
        response = RedirectResponse(_local(next, "/"), status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            source()
        except StoreError as exc:
            return _json({"status": "degraded", "reason": str(exc)})
        return _json({"status": "ok"})

    return protect(app, token=config.token, secret=config.secret)


def chosen_filter(segment: str, approximate: str) -> tuple[str, str]:
    """`?segment=` and `?approximate=` as `dashboards.analysis.translation.chosen_filter`
    reads them; a contradiction is a 400."""
    try:
        return translation.chosen_filter(segment, approximate)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


def translation_segment(segment: str, approximate: str) -> str:
    """The stats segment to read for `?segment=` and `?approximate=`
    (`dashboards.analysis.translation`); a contradiction is a 400."""
    try:
        return translation.translation_segment(segment, approximate)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


def _local(path: str, fallback: str) -> str:
    """`path` when it stays on this site (a path, not `//host` or `/\\host`), else `fallback`:
    a form's return address must not send anyone elsewhere."""
    if path.startswith("/") and not path.startswith(("//", "/\\")):
        return path
    return fallback


def _window(window: Window) -> dict[str, Any]:
    return {"since": window.since, "until": window.until, "label": window.label}


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json(data: Any) -> Response:
    body = orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, media_type="application/json")
