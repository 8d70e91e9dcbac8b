"""How long `shadowjudge run` takes to start, and what it holds in memory when idle.

    .venv/bin/python -m tests.benchmarks.startup [--runs 3] [--idle 10]

Start-up is the time from exec to the sidecar answering `GET /healthz`; idle RSS is VmRSS
(/proc/<pid>/status) `--idle` seconds after that, with no traffic. Beside them, the same two
figures for a baseline: a bare uvicorn serving one route (what any Python HTTP service pays),
and the time `shadowjudge --help` and a failing start (the sidecar port taken: one line, exit 2)
take to exit. Medians of `--runs`. Prints e.g. `run start-up 1.01 s, idle RSS 340 MB (bare
uvicorn 0.19 s, 30 MB; --help 0.31 s; port taken 0.98 s)`.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.broker import free_port

BASELINE = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before answering")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing answered on {port} in {timeout_s}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(command: list[str], port: int, idle_s: float, cwd: Path) -> tuple[float, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy(port, process)
        up = time.perf_counter() - started
        time.sleep(idle_s)
        return up, rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(60)


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, check=False, timeout=60)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    shadowjudge = [sys.executable, "-m", "dashboards.command"]
    runs: dict[str, list[float]] = {k: [] for k in ("up", "rss", "b_up", "b_rss", "help", "taken")}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as directory:
            cwd = Path(directory)
            port = free_port()
            config = cwd / "shadowjudge.yaml"
            config.write_text(
                f'sidecar: {{listen: "127.0.0.1:{port}"}}\n'
                f'dashboards: {{listen: "127.0.0.1:{free_port()}"}}\n'
                f'store: "chdb://{cwd / "store"}"\n'
                "judge: {metrics_listen: null}\nrunner: {metrics_listen: null}\n"
            )
            up, rss = measure([*shadowjudge, "-c", str(config), "run"], port, args.idle, cwd)
            runs["up"].append(up)
            runs["rss"].append(rss)
            port = free_port()
            up, rss = measure([sys.executable, "-c", BASELINE, str(port)], port, args.idle, cwd)
            runs["b_up"].append(up)
            runs["b_rss"].append(rss)
            runs["help"].append(timed([*shadowjudge, "--help"], cwd))
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                config.write_text(
                    f"sidecar: {{listen: '127.0.0.1:{taken.getsockname()[1]}'}}\n"
                    f'store: "chdb://{cwd / "store"}"\n'
                )
                runs["taken"].append(timed([*shadowjudge, "-c", str(config), "run"], cwd))
    m = {k: statistics.median(v) for k, v in runs.items()}
    print(  # noqa: T201
        f"run start-up {m['up']:.2f} s, idle RSS {m['rss']:.0f} MB (bare uvicorn"
        f" {m['b_up']:.2f} s, {m['b_rss']:.0f} MB; --help {m['help']:.2f} s; port taken"
        f" {m['taken']:.2f} s)"
    )


if __name__ == "__main__":
    main()
