"""`shadowjudge demo`: the whole loop on one machine with no API keys, clearly simulated.

`run`, unchanged, with three simulated parts around it (`simulation.demo`):

- two simulated providers on free loopback ports, speaking the OpenAI and the Anthropic APIs
  (streaming included): the app's model (`gpt-4o`) and the judge (`simulated-judge`) on the
  OpenAI one, the candidate (`claude-sonnet-4-5`) on the Anthropic one;
- the shop's support assistant sending its traffic mix through the sidecar with the official
  OpenAI SDK, in its own thread and event loop (as an app would be its own process);
- the settings a team would write: one migration sampled in full, the noise arm on, segments by
  plan, a staged rollout at its first step (5% of the users, sticky by user, steps 5 → 25 → 50
  → 100% held 60 s each), and four rules — two of them `rollback: true` — evaluated every 10 s
  over the last hour. The candidate is worse than the primary, so a rule fires within a few
  minutes and sends the rollout to 0%: the app's answers all come from the primary again.

The demo keeps its own store (`./var/demo` by default, `--fresh` empties it) so it never mixes
simulated figures with a real `run`'s. Every name that shows on the pages says simulated: the
providers are `simulated-openai` and `simulated-anthropic`, the judge `simulated-judge`, and its
reasons start with "(simulated judge)".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboards.command import preflight
from dashboards.settings import Settings, parse_settings
from mirror.errors import ConfigError

if TYPE_CHECKING:  # the simulation, the roles and the SDKs load when the demo starts
    from simulation.demo.models import Judge, Primary
    from simulation.demo.traffic import Traffic
    from simulation.providers import FakeReply

log = logging.getLogger("shadowjudge.demo")

MIGRATION = "support-bot-to-claude"
PRIMARY_MODEL = "gpt-4o"
CANDIDATE_MODEL = "claude-sonnet-4-5"
JUDGE_MODEL = "simulated-judge"
#: The simulated providers' key variable: set by the demo, to a value that is not a secret.
KEY_ENV = "SHADOWJUDGE_DEMO_KEY"
APP_KEY = "sk-demo-simulated-not-a-secret"
ROLES = {"mirror", "runner", "judge", "dashboards"}


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole loop with simulated providers, judge and traffic: no API keys needed",
    )
    demo.add_argument("--rate", type=float, default=6.0, help="app calls per second (6)")
    demo.add_argument("--store", default="./var/demo", help="the demo's own chDB directory")
    demo.add_argument("--fresh", action="store_true", help="empty the demo's store first")
    demo.add_argument("--sidecar-listen", default="127.0.0.1:8700")
    demo.add_argument("--dashboards-listen", default="127.0.0.1:8701")
    demo.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: ^C)"
    )


def demo_settings(
    openai_url: str,
    anthropic_url: str,
    *,
    store: str,
    sidecar_listen: str,
    dashboards_listen: str,
) -> Settings:
    """The settings a team would write for this migration, pointed at the simulated providers."""
    key = {"api_key_env": KEY_ENV}
    raw: dict[str, Any] = {
        "providers": {
            "simulated-openai": {"kind": "openai", "base_url": openai_url, **key},
            "simulated-anthropic": {"kind": "anthropic", "base_url": anthropic_url, **key},
        },
        "sidecar": {
            "listen": sidecar_listen,
            "upstream": {"openai": "simulated-openai", "anthropic": "simulated-anthropic"},
        },
        "capture": {
            "redact": [{"name": "email", "pattern": r"[\w.+-]+@[\w-]+\.[\w.-]+"}],
            "segment_headers": {"plan": "x-demo-plan"},
        },
        "store": {"url": _store_url(Path(store)), "batch_seconds": 0.5},
        "judge": {"provider": "simulated-openai", "model": JUDGE_MODEL},
        "dashboards": {"listen": dashboards_listen},
        "triggers": {
            "interval_s": 10,
            "rules": [
                {
                    "name": "equivalence-low",
                    "metric": "equivalence_rate",
                    "threshold": 0.90,
                    "min_pairs": 100,
                    "window": "1h",
                    "rollback": True,
                },
                {
                    "name": "refusals-up",
                    "metric": "refusal_difference",
                    "margin": 0.005,
                    "min_pairs": 100,
                    "window": "1h",
                    "rollback": True,
                },
                {
                    "name": "slow-tail",
                    "metric": "latency_ratio",
                    "margin": 0.30,
                    "min_pairs": 100,
                    "window": "1h",
                },
                {
                    "name": "format-drift",
                    "metric": "format_drift_rate",
                    "threshold": 0.05,
                    "min_pairs": 100,
                    "window": "1h",
                },
            ],
        },
        "runner": {"limits": {"simulated-anthropic": {"concurrency": 64}}},
        "migrations": [
            {
                "name": MIGRATION,
                "match": {"api": ["openai.chat_completions"], "model": ["gpt-4o*"]},
                "sampling": {"rate": 1.0},
                "noise_rate": 0.1,
                "arms": [
                    {
                        "name": "sonnet",
                        "provider": "simulated-anthropic",
                        "model": CANDIDATE_MODEL,
                        "sampling": "drop",
                    }
                ],
                # A first canary step already taken: 5% of the users get the candidate's
                # answers (translated back to the OpenAI API) until a trigger rolls it back.
                "rollout": {
                    "sticky": "header:x-demo-user",
                    "weight": 0.05,
                    "steps": [0.05, 0.25, 0.5, 1.0],
                    "hold": "60s",
                },
            }
        ],
    }
    return parse_settings(raw, "the demo's built-in settings")


def _by_model(routes: Mapping[str, Primary | Judge]) -> Any:
    async def reply(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply | None:
        model = routes.get(str(body.get("model", "")))
        return None if model is None else await model.reply(body, headers)

    return reply


@contextmanager
def simulated_providers() -> Iterator[tuple[str, str]]:
    """The two simulated providers, served in threads: (OpenAI URL, Anthropic URL)."""
    from simulation.demo.models import Candidate, Judge, Primary
    from simulation.providers import anthropic_app, openai_app, serve

    primary, judge, candidate = Primary(), Judge(), Candidate()
    openai_sim = openai_app(
        responder=_by_model({primary.model: primary, JUDGE_MODEL: judge}),
        chunk_delay_ms=15,
        max_recorded=100,
    )
    anthropic_sim = anthropic_app(responder=candidate.reply, chunk_delay_ms=15, max_recorded=100)
    with ExitStack() as stack:
        served_openai = stack.enter_context(serve(openai_sim))
        served_anthropic = stack.enter_context(serve(anthropic_sim))
        yield served_openai.url, served_anthropic.url


class AppThread:
    """The simulated app in its own thread and event loop, started once the sidecar listens."""

    def __init__(self, sidecar: str, rate: float) -> None:
        from simulation.demo.traffic import Traffic

        self.traffic: Traffic = Traffic(f"http://{sidecar}/v1", rate=rate, api_key=APP_KEY)
        self.sidecar = sidecar
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="demo-app", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop_sending(self) -> None:
        """No new calls (in-flight ones finish): at the stop signal, before the sidecar stops,
        as a real app is drained by its load balancer before the sidecar beside it goes."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed in between: it has stopped
                loop.call_soon_threadsafe(stop.set)

    def stop(self) -> None:
        if self._thread.ident is None:
            return  # never started (the roles failed to start)
        self.stop_sending()
        self._thread.join(timeout=35)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        host, _, port = self.sidecar.rpartition(":")
        while not self._stop.is_set():  # the sidecar's socket is bound before it serves
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    break
            except OSError:
                await asyncio.sleep(0.2)
        await self.traffic.run(self._stop)


def progress(dashboards: str, app: AppThread) -> str:
    """One line: what the app sent, what the judge stored, which triggers fire."""
    import httpx

    line = f"app: {app.traffic.counts.line()}"
    try:
        found = httpx.get(f"http://{dashboards}/api/v1/migrations?window=1h", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return line + "; pages: not up yet"
    for migration in found.get("migrations", []):
        for arm in migration.get("arms", []):
            if arm.get("arm_kind") != "candidate":
                continue
            equivalence = arm.get("equivalence") or {}
            firing = [t["rule"] for t in arm.get("triggers", []) if t.get("decision") == "fire"]
            line += (
                f"; {arm['migration']}/{arm['arm']}: {arm['pairs']} pairs, {arm['judged']} judged"
            )
            if equivalence:
                line += f", equivalent {equivalence['estimate']:.0%}"
            line += f", firing: {', '.join(firing)}" if firing else ", no trigger firing"
    return line


async def _report(dashboards: str, app: AppThread, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        log.info("%s", await asyncio.to_thread(progress, dashboards, app))


async def _run(settings: Settings, app: AppThread, dashboards: str) -> None:
    from dashboards.command.supervisor import run_roles

    roles = asyncio.create_task(run_roles(settings, ROLES, on_signal=app.stop_sending))
    await asyncio.sleep(0)  # run_roles binds both ports before its first await
    if roles.done():
        roles.result()  # a taken port: said before the app sends anything
    app.start()
    reporter = asyncio.create_task(_report(dashboards, app, 15.0))
    try:
        await roles
    finally:
        reporter.cancel()


def _free(listen: str, flag: str) -> None:
    from mirror.sidecar.server import bind

    bind(listen, flag).close()


def _store_url(store: Path) -> str:
    return f"chdb://{store.resolve()}"


def run(args: argparse.Namespace) -> int:
    """The demo until ^C, SIGTERM or `--duration`. The store directory is claimed first (a
    second demo on it stops here, with one line), then emptied with `--fresh`."""
    for flag, listen in (
        ("--sidecar-listen", args.sidecar_listen),
        ("--dashboards-listen", args.dashboards_listen),
    ):
        _free(listen, flag)  # said before anything starts; run binds them for good later
    store = Path(args.store)
    only_store = parse_settings({"store": {"url": _store_url(store)}}, "the demo's store")
    try:
        held = preflight.claim_store(only_store, create=True)
    except ConfigError as exc:  # name the flag the user gave, not a settings key they did not
        raise ConfigError(
            str(exc).replace(f"store.url: {only_store.store.url}", "--store")
        ) from exc
    try:
        if args.fresh:
            for child in store.iterdir():
                if child.name != "shadowjudge.lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        return _demo(args, store)
    finally:
        if held is not None:
            held.release()


def _demo(args: argparse.Namespace, store: Path) -> int:
    os.environ.setdefault(KEY_ENV, "simulated-key-not-a-secret")
    with simulated_providers() as (openai_url, anthropic_url):
        settings = demo_settings(
            openai_url,
            anthropic_url,
            store=str(store),
            sidecar_listen=args.sidecar_listen,
            dashboards_listen=args.dashboards_listen,
        )
        log.warning(
            "SIMULATED DEMO: the providers (%s, %s), the judge and the app's traffic are "
            "simulated; nothing leaves this machine and no key is needed",
            openai_url,
            anthropic_url,
        )
        log.info(
            "the app calls the sidecar at http://%s/v1 with the OpenAI SDK, %.1f calls/s; "
            "open http://%s for the dashboards (judged pairs within a minute, a rollback "
            "trigger within a few minutes); ^C stops",
            args.sidecar_listen,
            args.rate,
            args.dashboards_listen,
        )
        app = AppThread(args.sidecar_listen, args.rate)
        if args.duration is not None:
            timer = threading.Timer(args.duration, os.kill, (os.getpid(), signal.SIGTERM))
            timer.daemon = True
            timer.start()
        started = time.monotonic()
        try:
            import uvloop

            uvloop.run(_run(settings, app, args.dashboards_listen))
        except ConfigError as exc:  # name the flags the user gave, not settings keys
            message = str(exc).replace("sidecar.listen", "--sidecar-listen")
            raise ConfigError(message.replace("dashboards.listen", "--dashboards-listen")) from exc
        finally:
            app.stop()
            log.info(
                "demo stopped after %.0fs: %s",
                time.monotonic() - started,
                app.traffic.counts.line(),
            )
    return 0
