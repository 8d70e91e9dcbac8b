"""`shadowjudge rollout status|set|rollback` against the pages' API, and who may write.

The dashboards app is served for real (uvicorn in a thread) over a migrated chDB store with a
rollout controller, as `run` serves it; the command is `main([...])`, as a user types it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboards.command.main import main
from dashboards.rollout.control import RolloutController
from dashboards.settings import Settings, load_settings
from dashboards.web.app import WebConfig, create_app
from judge.store.store import Store
from mirror.rollout import Weights
from simulation.providers import serve
from tests.chdb import fresh_store

CONFIG = """
migrations:
  - name: support
    arms: [{name: sonnet, provider: anthropic, model: claude-sonnet-4-5}]
    rollout: {steps: [0.05, 0.25, 0.5, 1.0], hold: 10m}
  - name: plain
    arms: [{name: haiku, provider: anthropic, model: claude-haiku-4-5}]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "shadowjudge.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def settings(config: Path) -> Settings:
    return load_settings(config)


@pytest.fixture
def store(chdb_dir: Path) -> Iterator[Store]:
    with fresh_store(chdb_dir, "c") as opened:
        yield opened


@pytest.fixture
def weights() -> Weights:
    return Weights()


@pytest.fixture
def pages(settings: Settings, store: Store, weights: Weights) -> Iterator[str]:
    control = RolloutController(settings.migrations, lambda: store, weights)
    with serve(create_app(lambda: store, WebConfig(rollout=control))) as served:
        yield served.url


def test_set_status_and_rollback_in_one_call_each(
    config: Path, pages: str, store: Store, weights: Weights, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(config), "rollout", "set", "support", "30%", "--url", pages]) == 0
    assert "support/sonnet: 0% → 30%" in capsys.readouterr().out
    held = weights.current("support")
    assert held is not None and held.weight == pytest.approx(0.3) and held.actor.startswith("cli:")

    assert main(["-c", str(config), "rollout", "status", "--url", pages]) == 0
    status = capsys.readouterr().out
    assert "support/sonnet: 30% (was 0%" in status and "steps 5% → 25% → 50% → 100%" in status

    why = ["--reason", "refusals up on the enterprise tenant"]
    assert main(["-c", str(config), "rollout", "rollback", "support", "--url", pages, *why]) == 0
    assert "support/sonnet: 30% → 0%" in capsys.readouterr().out
    rows = store.select("SELECT weight, previous, reason FROM rollout ORDER BY changed_at")
    assert rows[-1] == {
        "weight": 0.0,
        "previous": pytest.approx(0.3),
        "reason": "refusals up on the enterprise tenant",
    }


def test_refusals_name_what_is_known(
    config: Path, pages: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(config), "rollout", "set", "nope", "10%", "--url", pages]) == 2
    assert "no migration named 'nope' (known: plain, support)" in capsys.readouterr().err
    assert main(["-c", str(config), "rollout", "set", "plain", "10%", "--url", pages]) == 2
    assert "'plain' has no rollout: section" in capsys.readouterr().err
    assert main(["-c", str(config), "rollout", "set", "support", "150%", "--url", pages]) == 2
    assert "between 0 and 100%" in capsys.readouterr().err


def test_without_a_token_a_browser_cannot_write(pages: str, weights: Weights) -> None:
    # No x-shadowjudge-client header: what a cross-origin form or fetch could send.
    answer = httpx.post(f"{pages}/api/v1/migrations/support/rollout", json={"weight": 1})
    assert answer.status_code == 403 and "dashboards.token_env" in answer.json()["error"]
    assert weights.current("support") is None


def test_with_a_token_the_bearer_writes(settings: Settings, store: Store, weights: Weights) -> None:
    control = RolloutController(settings.migrations, lambda: store, weights)
    app = create_app(lambda: store, WebConfig(token="t0ken", rollout=control))
    with serve(app) as served:
        url = f"{served.url}/api/v1/migrations/support/rollout"
        assert httpx.post(url, json={"weight": "5%"}).status_code == 401
        answer = httpx.post(url, json={"weight": "5%"}, headers={"Authorization": "Bearer t0ken"})
        assert answer.status_code == 200 and answer.json()["weight"] == pytest.approx(0.05)
    held = weights.current("support")
    assert held is not None and held.actor == "api"
