"""`shadowjudge dashboards` and `report`, and what a newcomer meets: a taken port, a token
variable unset, a non-loopback address without a token."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dashboards.settings import parse_settings
from mirror.errors import ConfigError
from mirror.sidecar.server import bind
from tests.broker import free_port, wait_for_port


def test_a_taken_port_names_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=r"dashboards.listen: cannot listen on .*in use"):
            bind(f"127.0.0.1:{port}", "dashboards.listen")


def test_pages_on_another_interface_need_a_token() -> None:
    with pytest.raises(ConfigError, match="dashboards.listen: 0.0.0.0:8701 is reachable"):
        parse_settings({"dashboards": {"listen": "0.0.0.0:8701"}})
    found = parse_settings({"dashboards": {"listen": "0.0.0.0:8701", "token_env": "SJ_T_UNSET"}})
    with pytest.raises(ConfigError, match="environment variable SJ_T_UNSET is not set"):
        found.dashboards.token()
    assert parse_settings({"dashboards": {"listen": "[::1]:8701"}}).dashboards.token() is None


def _command(config: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboards.command", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A chDB directory with generated pairs, closed again (chDB: one directory per process,
    so the filling runs in a child)."""
    store = tmp_path / "store"
    script = (
        "from judge.config import StoreSettings\n"
        "from judge.store.store import Store\n"
        "from tests.dashboards.generate import generate\n"
        f"s = Store.open(StoreSettings(url='chdb://{store}')); s.migrate()\n"
        "g = generate(400, seed=4); s.insert_pairs(g.pairs, g.comparisons); s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=Path.cwd())
    return store


def test_dashboards_alone_and_report_from_the_store(tmp_path: Path, filled: Path) -> None:
    pages = free_port()
    config = tmp_path / "shadowjudge.yaml"
    config.write_text(
        f'store: "chdb://{filled}"\n'
        f'dashboards: {{listen: "127.0.0.1:{pages}", token_env: SJ_T_TOKEN}}\n'
    )
    unset = _command(config, "dashboards", env={**os.environ, "SJ_T_TOKEN": ""})
    assert unset.returncode == 2
    assert "dashboards.token_env: environment variable SJ_T_TOKEN is not set" in unset.stderr
    # nothing answers on the dashboards address: report reads the store itself
    printed = _command(
        config, "report", "--migration", "support", env={**os.environ, "SJ_T_TOKEN": "t"}
    )
    assert printed.returncode == 0, printed.stderr
    assert f"from chdb://{filled}" in printed.stdout
    assert "set judge.provider and judge.model" in printed.stdout
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboards.command", "-c", str(config), "dashboards"],
        env={**os.environ, "SJ_T_TOKEN": "t"},
    )
    try:
        wait_for_port(pages, 30)
        base = f"http://127.0.0.1:{pages}"
        assert httpx.get(f"{base}/api/v1/migrations").status_code == 401
        auth = {"Authorization": "Bearer t"}
        for _ in range(100):  # the store opens in the background
            answer = httpx.get(f"{base}/api/v1/migrations?window=7d", headers=auth)
            if answer.status_code == 200:
                break
            assert answer.status_code == 503
            time.sleep(0.2)
        assert [m["migration"] for m in answer.json()["migrations"]] == ["support"]
        # the directory is held: report reaches it through the pages' API
        again = _command(
            config,
            "report",
            "--migration",
            "support",
            "--url",
            base,
            env={**os.environ, "SJ_T_TOKEN": "t"},
        )
        assert again.returncode == 0, again.stderr
        assert f"from {base}" in again.stdout
        # a second `dashboards` on the same directory stops before it binds a port
        taken = _command(config, "dashboards", env={**os.environ, "SJ_T_TOKEN": "t"})
        assert taken.returncode == 2
        assert f"the directory {filled} is held by process {process.pid}" in taken.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_report_of_an_unknown_migration(tmp_path: Path, filled: Path) -> None:
    config = tmp_path / "shadowjudge.yaml"
    config.write_text(
        f'store: "chdb://{filled}"\ndashboards: {{listen: "127.0.0.1:{free_port()}"}}\n'
    )
    started = time.monotonic()
    printed = _command(config, "report", "--migration", "nope")
    assert printed.returncode == 2
    assert printed.stderr == (
        "shadowjudge: --migration nope: no migration of that name; known: support\n"
    )
    assert time.monotonic() - started < 10
    started = time.monotonic()
    again = _command(config, "rejudge", "--migration", "nope", "--since", "2020-01-01")
    assert again.returncode == 2
    assert again.stderr.endswith(
        "shadowjudge: --migration nope: no migration of that name; known: support\n"
    )
    assert time.monotonic() - started < 10
    # a known migration with no pairs in the window is another answer
    recent = _command(config, "report", "--migration", "support", "--window", "2001-01-01")
    assert recent.returncode == 1
    assert "no pairs of migration 'support' in the window 2001-01-01" in recent.stderr


def test_run_with_the_sidecar_port_taken_says_so_and_exits(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "shadowjudge.yaml"
        config.write_text(
            f'store: "chdb://{tmp_path / "store"}"\n'
            f"sidecar: {{listen: '127.0.0.1:{port}'}}\n"
            f"dashboards: {{listen: '127.0.0.1:{free_port()}'}}\n"
        )
        started = time.monotonic()
        done = _command(config, "run")
        elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert f"sidecar.listen: cannot listen on 127.0.0.1:{port}: the port is in use" in done.stderr
    assert elapsed < 10  # the interpreter's start included; the failure itself is immediate
