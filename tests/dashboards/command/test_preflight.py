"""What a newcomer meets first fails at once, in one line naming the setting and what to do:
a store directory another process holds or this user cannot write, a Kafka broker or a
ClickHouse server that does not answer, a store that does not exist yet (read-only commands
create nothing), no settings file at all.

Each runs the real command in a subprocess and asserts the message, the exit code and the time
to exit. The bound asserted is 5 s, generous for a loaded 2-core machine; the figures measured
are in docs/benchmarks.md (`tests.benchmarks.startup`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.broker import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[3]
FAST_S = 5.0
HELD = "stop it, or set store.url to another directory"  # the end of every "held" message


def shadowjudge(
    *args: str, cwd: Path, stdin: str = ""
) -> tuple[subprocess.CompletedProcess[str], float]:
    """The command run to its end, and the seconds it took."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dashboards.command", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - started


def settings(directory: Path, store: str, **more: str) -> Path:
    """A settings file with free ports, `store` as store.url, and `more` sections."""
    path = directory / f"settings-{free_port()}.yaml"
    lines = [
        f'store: "{store}"',
        f'sidecar: {{listen: "127.0.0.1:{free_port()}"}}',
        f'dashboards: {{listen: "127.0.0.1:{free_port()}"}}',
        "judge: {metrics_listen: null}",
        "runner: {metrics_listen: null}",
        *(f"{key}: {value}" for key, value in more.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A `shadowjudge run` on the chDB directory tmp_path/store: (the directory, its pid)."""
    store = tmp_path / "store"
    config = settings(tmp_path, f"chdb://{store}")
    port = int(config.read_text().split("127.0.0.1:")[1].split('"')[0])
    with subprocess.Popen(
        [sys.executable, "-m", "dashboards.command", "-c", str(config), "run"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
        try:
            wait_for_port(port, 60)
            yield store, process.pid
            # the first run is not disturbed by the ones refused
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def test_a_second_run_on_the_same_store_says_who_holds_it(
    tmp_path: Path, running: tuple[Path, int]
) -> None:
    store, pid = running
    config = settings(tmp_path, f"chdb://{store}")
    held = (
        f"shadowjudge: store.url: chdb://{store}: the directory {store} is held by process {pid}"
        " (another `shadowjudge run`, `judge` or `dashboards` on it? chDB allows one process"
        f" per directory): {HELD}"
    )
    for command in (
        ["run"],
        ["dashboards"],
        ["rejudge", "--migration", "m", "--since", "2026-01-01"],
    ):
        done, took = shadowjudge("-c", str(config), *command, cwd=tmp_path)
        assert (done.returncode, last_line(done.stderr)) == (2, held), command
        assert took < FAST_S, command
    # the commands that only read can ask the holder's dashboards instead
    done, took = shadowjudge("-c", str(config), "report", "--migration", "m", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        last_line(done.stderr)
        == f"{held}; or ask that process's dashboards: --url http://HOST:PORT"
    )
    assert took < FAST_S


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write: read-only by mode, or (root ignores modes) a
    read-only tmpfs."""
    directory = tmp_path / "readonly"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_an_unwritable_store_directory(tmp_path: Path, unwritable: Path) -> None:
    store = unwritable / "store"
    config = settings(tmp_path, f"chdb://{store}")
    done, took = shadowjudge("-c", str(config), "run", cwd=tmp_path)
    assert done.returncode == 2
    assert last_line(done.stderr).startswith(
        f"shadowjudge: store.url: chdb://{store}: cannot write to the directory {store} ("
    )
    assert last_line(done.stderr).endswith(
        "): give this user write access to it, or set store.url to another directory"
    )
    assert took < FAST_S


def test_kafka_and_clickhouse_not_answering_at_start(tmp_path: Path) -> None:
    no_kafka = settings(tmp_path, f"chdb://{tmp_path / 'store'}", bus="kafka://127.0.0.1:1")
    done, took = shadowjudge("-c", str(no_kafka), "run", cwd=tmp_path)
    assert (done.returncode, last_line(done.stderr)) == (
        2,
        "shadowjudge: bus.url: kafka://127.0.0.1:1: no Kafka broker answers at 127.0.0.1:1"
        " (connection refused): start it, or fix bus.url",
    )
    assert took < FAST_S
    no_server = settings(tmp_path, "http://default:s3cret@127.0.0.1:1/shadow")
    for command in (["run"], ["migrate"]):
        done, took = shadowjudge("-c", str(no_server), *command, cwd=tmp_path)
        assert (done.returncode, last_line(done.stderr)) == (
            2,
            "shadowjudge: store.url: http://default:***@127.0.0.1:1/shadow: no ClickHouse"
            " server answers at 127.0.0.1:1 (connection refused): start it, or fix store.url",
        )
        assert took < FAST_S
    assert "s3cret" not in done.stderr


def test_the_sidecar_alone_serves_without_kafka(tmp_path: Path) -> None:
    """The live path does not depend on the bus: `mirror` says the broker is away and serves."""
    config = settings(tmp_path, "chdb://memory", bus="kafka://127.0.0.1:1")
    port = int(config.read_text().split("127.0.0.1:")[1].split('"')[0])
    with subprocess.Popen(
        [sys.executable, "-m", "dashboards.command", "-c", str(config), "mirror"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            if "no migrations configured" in line:  # said before, for the same settings
                line = process.stderr.readline()
            assert "bus.url: kafka://127.0.0.1:1: no Kafka broker answers at 127.0.0.1:1" in line
            assert line.rstrip().endswith(
                "the sidecar forwards every call; captures are dropped and counted until a"
                " broker answers"
            )
            wait_for_port(port, 30)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    """With no settings file and no store yet (a fresh directory), every command that only
    reads says so and leaves the directory as it was."""
    missing = (
        f"store.url: chdb:///./var/shadowjudge: no store at {tmp_path.resolve()}/var/shadowjudge"
        " (nothing recorded yet: start `shadowjudge run`)"
    )
    expected = {
        ("report", "--migration", "m"): (2, f"shadowjudge: {missing}"),
        ("triggers", "check", "--migration", "m"): (
            3,
            f"shadowjudge: triggers check failed: {missing}",
        ),
        ("review", "digest"): (2, f"shadowjudge: {missing}"),
        ("dlq", "list"): (
            2,
            "shadowjudge: the embedded run keeps its DLQ inside the `shadowjudge run` process;"
            " dlq commands need a Kafka bus (bus: kafka://host:port)",
        ),
    }
    for command, (code, line) in expected.items():
        done, took = shadowjudge(*command, cwd=tmp_path)
        assert (done.returncode, last_line(done.stderr)) == (code, line), command
        assert took < FAST_S, command
    done, took = shadowjudge("check", cwd=tmp_path)
    assert done.returncode == 0
    assert "no settings file (shadowjudge.yaml): running with the defaults" in done.stderr
    assert took < FAST_S
    assert list(tmp_path.iterdir()) == []


def test_run_without_settings_says_how_to_begin(tmp_path: Path) -> None:
    """Said first, before anything can fail: here the default store directory is held, so the
    run stops there without binding the default ports."""
    hold = (
        "import sys\nfrom pathlib import Path\nfrom judge.store.claim import claim\n"
        "held = claim(Path('var/shadowjudge'), create=True)\nprint('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", hold],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            done, took = shadowjudge("run", cwd=tmp_path)
        finally:
            holder.kill()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert lines[0].endswith(
        "WARNING shadowjudge: no settings file (shadowjudge.yaml): running with the defaults"
        " (the sidecar on 127.0.0.1:8700 forwarding to OpenAI and Anthropic, the dashboards on"
        " http://127.0.0.1:8701, the store at chdb:///./var/shadowjudge); nothing is shadowed:"
        " `shadowjudge init` writes a starter config, `shadowjudge demo` shows the whole loop"
        " without API keys"
    )
    assert lines[-1].endswith(HELD)
    assert took < FAST_S


def test_the_start_loads_no_sdk_and_no_statistics_library() -> None:
    """What `run` imports before its sidecar answers: none of the libraries a process loads
    only when it asks the judge, draws an interval or reads the store (seconds and hundreds of
    MB between them; see docs/benchmarks.md)."""
    heavy = ("anthropic", "openai", "scipy", "statsmodels", "pandas", "clickhouse_connect")
    code = (
        "import sys, dashboards.command.supervisor\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, ""), done.stderr
