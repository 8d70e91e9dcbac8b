"""Serving an ASGI app on a free loopback port, in a thread or in a separate process.

``serve(app)`` runs uvicorn (uvloop, httptools, no access log, no ``server``/``date``
headers of its own) in a daemon thread and yields a ``Served`` with ``url``
(``http://127.0.0.1:PORT``) and ``port``; it stops the server and joins the thread on exit.
Works for any ASGI app (a fake, or the sidecar under test).

``serve_subprocess("openai" | "anthropic", latency_ms=..., ttft_ms=...)`` starts
``python -m simulation.providers <kind> --port 0 ...`` so the fake does not share the GIL with the
code under measurement (benchmarks), waits until it listens, and terminates it on exit.
The child prints ``listening on http://127.0.0.1:PORT`` on stdout once it serves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import uvicorn

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Served:
    """Where a served app listens. OpenAI SDK: ``f"{url}/v1"``; Anthropic SDK: ``url``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def bind(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """A listening TCP socket (port 0: a free port chosen by the kernel)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def uvicorn_config(app: Any, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "ws": "none",
        "lifespan": "auto",
        "access_log": False,
        "server_header": False,
        "date_header": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 2,
        **overrides,
    }
    return uvicorn.Config(app, **options)


@contextmanager
def serve(
    app: Any,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    startup_timeout: float = 10.0,
    **uvicorn_options: Any,
) -> Iterator[Served]:
    """Serve ``app`` with uvicorn in a background thread for the duration of the block."""
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn_config(app, **uvicorn_options))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        yield Served(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _module() -> tuple[str, Path]:
    """This package's dotted name and the directory to run ``python -m`` from."""
    package = __package__ or "simulation.providers"
    root = Path(__file__).resolve().parents[len(package.split("."))]
    return package, root


@contextmanager
def serve_subprocess(
    kind: Literal["openai", "anthropic"],
    *,
    host: str = LOOPBACK,
    port: int = 0,
    latency_ms: float = 0.0,
    ttft_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    startup_timeout: float = 30.0,
) -> Iterator[Served]:
    """Run a fake in its own process (`python -m simulation.providers`) while the block runs."""
    package, root = _module()
    command = [
        sys.executable,
        "-m",
        package,
        kind,
        "--host",
        host,
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
        "--ttft-ms",
        str(ttft_ms),
        "--chunk-delay-ms",
        str(chunk_delay_ms),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        served = _await_listening(process, startup_timeout)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _await_listening(process: subprocess.Popen[str], timeout: float) -> Served:
    found: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = found[0].strip() if found else ""
    if not line.startswith("listening on http://"):
        raise RuntimeError(f"fake provider process did not start (exit code {process.poll()})")
    host, _, port = line.removeprefix("listening on http://").rpartition(":")
    served = Served(host, int(port))
    with socket.create_connection((served.host, served.port), timeout=timeout):
        pass
    return served
