"""Serving the dashboards: inside `run` (over the store the judge holds) or alone.

The app runs under uvicorn in a thread of its own, with its own event loop, so rendering a
page or computing an interval never holds the loop the sidecar's live path runs on; its routes
are synchronous and reach the store, which serialises calls, from uvicorn's thread pool. The
listening socket is bound before the thread starts, so a taken port fails the command at once,
with the key to change (`dashboards.listen`), instead of a thread dying quietly. The thread
leaves signals alone: the supervisor owns them and stops this server with the other roles.

`StoreHolder` is the hand-over: in `run` the judge opens the embedded store (one process per
chDB directory) and lends it; alone, `shadowjudge dashboards` opens it itself. Until then pages
answer 503 with the reason.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvicorn

from dashboards.analysis.embedding_migration import EmbeddingMigration
from dashboards.analysis.figures import Sampling
from dashboards.rollout.control import RolloutController
from dashboards.settings import Settings
from dashboards.triggers.alerts import Sink
from dashboards.triggers.engine import Evaluator
from dashboards.web.app import WebConfig, create_app
from judge.errors import StoreUnavailableError
from judge.store.store import Store
from mirror.sidecar.server import bind

if TYPE_CHECKING:
    from judge.scorers.pairwise import PairwiseJudge

log = logging.getLogger("shadowjudge.dashboards")


class StoreHolder:
    """The store the pages read, once someone has opened it."""

    def __init__(self) -> None:
        self._store: Store | None = None
        self.reason = "the store is being opened"

    def lend(self, store: Store) -> None:
        self._store = store

    def take_back(self, reason: str) -> None:
        self._store, self.reason = None, reason

    def __call__(self) -> Store:
        if self._store is None:
            raise StoreUnavailableError(self.reason, condition="unreachable")
        return self._store


def web_config(settings: Settings) -> WebConfig:
    sampling = {
        m.name: Sampling(rate=m.sampling.rate, noise_rate=m.noise_rate) for m in settings.migrations
    }
    models = {m.name: {arm.name: arm.model for arm in m.arms} for m in settings.migrations}
    embeddings = {
        m.name: spec
        for m in settings.migrations
        if (spec := EmbeddingMigration.from_settings(m)) is not None
    }
    return WebConfig(
        token=settings.dashboards.token(),
        sampling=sampling,
        models=models,
        triggers=settings.triggers,
        embeddings=embeddings,
        judge=judge_factory(settings),
    )


def judge_factory(settings: Settings) -> Callable[[], PairwiseJudge] | None:
    """Makes the settings' LLM judge for the embedding page (None when none is configured);
    made at each question, so a key variable set late or missing is the answer's reason."""
    if settings.judge.provider is None:
        return None

    def make() -> PairwiseJudge:
        from dashboards.command.embeddings_judge import configured_judge

        return configured_judge(settings)

    return make


def evaluator_for(
    settings: Settings,
    holder: StoreHolder,
    rollback: Callable[[str, str, str, str], None] | None = None,
) -> Evaluator | None:
    """The trigger engine, when this process evaluates and there are rules; sinks' URLs are
    read from the environment now, so a missing one fails the start with its key. A firing
    `rollback: true` rule calls `rollback(migration, arm, actor, reason)`."""
    if not settings.triggers.evaluate or not settings.triggers.rules:
        return None
    sinks = [
        Sink.from_settings(sink, f"triggers.sinks[{i}]")
        for i, sink in enumerate(settings.triggers.sinks)
    ]
    return Evaluator(
        settings.triggers,
        holder,
        sinks=sinks,
        base_url=settings.dashboards.url,
        config_hash=settings.config_hash,
        rollback=rollback,
    )


class DashboardServer:
    def __init__(
        self,
        settings: Settings,
        holder: StoreHolder,
        evaluator: Evaluator | None = None,
        rollout: RolloutController | None = None,
    ) -> None:
        self.listen = settings.dashboards.listen
        self._socket = bind(self.listen, "dashboards.listen")
        web = web_config(settings)
        web.rollout = rollout
        web.loopback = ipaddress.ip_address(self._socket.getsockname()[0]).is_loopback
        if evaluator is not None:
            web.registries.append(evaluator.registry)
        app = create_app(holder, web)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)  # off the main thread: it leaves signals alone
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="dashboards",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()
        log.info("dashboards on http://%s", self.listen)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()
