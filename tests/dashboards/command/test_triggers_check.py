"""`shadowjudge triggers check`: exit codes against a bare store and against a running `run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.broker import free_port, wait_for_port

RULES = {
    "fire": "{name: eq, metric: equivalence_rate, threshold: 0.9, window: 7d}",
    "clear": "{name: eq, metric: equivalence_rate, threshold: 0.5, window: 7d}",
    "hold": "{name: eq, metric: equivalence_rate, threshold: 0.9, window: 7d, min_pairs: 1000000}",
}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("triggers") / "store"
    script = (
        "from judge.config import StoreSettings\n"
        "from judge.store.store import Store\n"
        "from tests.dashboards.generate import generate\n"
        f"s = Store.open(StoreSettings(url='chdb://{store}')); s.migrate()\n"
        "g = generate(1500, seed=3); s.insert_pairs(g.pairs, g.comparisons); s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    return store


def config(tmp_path: Path, store: Path, decision: str, **ports: int) -> Path:
    path = tmp_path / f"{decision}.yaml"
    path.write_text(
        f'store: "chdb://{store}"\n'
        f"sidecar: {{listen: '127.0.0.1:{ports.get('sidecar', free_port())}'}}\n"
        f"dashboards: {{listen: '127.0.0.1:{ports.get('pages', free_port())}'}}\n"
        "migrations: [{name: support, arms: [{name: sonnet, provider: anthropic,"
        " model: claude-sonnet-4-6}]}]\n"
        f"triggers: {{interval_s: 0.5, rules: [{RULES[decision]}]}}\n"
    )
    return path


def check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dashboards.command",
            "-c",
            str(path),
            "triggers",
            "check",
            "--migration",
            "support",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("decision", "code"), [("clear", 0), ("fire", 1), ("hold", 2)])
def test_exit_codes_against_a_bare_store(
    tmp_path: Path, filled: Path, decision: str, code: int
) -> None:
    done = check(config(tmp_path, filled, decision))
    assert done.returncode == code, done.stderr
    assert done.stdout.startswith(f"support: {decision} (from chdb://")
    assert "eq" in done.stdout and "sonnet" in done.stdout


def test_a_failed_check_is_3_not_a_decision(tmp_path: Path, filled: Path) -> None:
    done = check(config(tmp_path, filled, "clear"), "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert "triggers check failed" in done.stderr


def test_exit_codes_against_a_running_run(tmp_path: Path, filled: Path) -> None:
    sidecar, pages = free_port(), free_port()
    path = config(tmp_path, filled, "fire", sidecar=sidecar, pages=pages)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashboards.command",
            "-c",
            str(path),
            "--log-level",
            "WARNING",
            "run",
        ],
        env=os.environ.copy(),
    )
    try:
        wait_for_port(pages, 30)
        wait_for_port(sidecar, 30)
        base = f"http://127.0.0.1:{pages}"
        deadline = time.monotonic() + 60
        while (
            "shadowjudge_trigger_decision{"
            not in httpx.get(f"http://127.0.0.1:{sidecar}/metrics").text
        ):
            assert time.monotonic() < deadline, "the rules were never evaluated"
            time.sleep(0.3)
        done = check(path)
        assert done.returncode == 1, done.stderr
        assert f"(from {base})" in done.stdout
        # the evaluation `run` made on its own shows on the analysis, with its audit row
        analysis = httpx.get(f"{base}/api/v1/migrations/support/analysis?window=7d").json()
        sonnet = next(a for a in analysis["arms"] if a["arm"] == "sonnet")
        assert [(t["rule"], t["decision"]) for t in sonnet["triggers"]] == [("eq", "fire")]
        assert 'rule="eq"' in httpx.get(f"{base}/metrics").text
        gate = httpx.get(f"{base}/api/v1/migrations/support/gate")
        assert (gate.status_code, gate.json()["decision"]) == (409, "fire")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


def test_a_misspelt_migration_holds(tmp_path: Path, filled: Path) -> None:
    path = config(tmp_path, filled, "clear")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dashboards.command",
            "-c",
            str(path),
            "triggers",
            "check",
            "--migration",
            "suport",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2  # hold: no evidence is not a pass
    assert done.stderr == (
        "shadowjudge: --migration suport: no migration of that name; known: support\n"
    )
