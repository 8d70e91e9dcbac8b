"""Sidecar memory: what 20 concurrent 5 MB requests make the sidecar hold, and give back.

    .venv/bin/python -m tests.benchmarks.sidecar_memory [--clients 20] [--mb 5] [--tree DIR]

Three processes: a fake OpenAI provider (answering after `--latency-ms`, so every request is
in the sidecar at once), the sidecar (pass-through: capture off, so what is measured is the
HTTP edge's own holding, not the capture queue's), and this one, which sends the requests on
raw sockets at once, samples the sidecar's VmRSS every 5 ms, and prints its RSS idle, at the
peak, and 2 s after the last connection closed, beside the request bytes in flight. The goal
(issue 13): the peak at most 1.3 times the bytes in flight above idle, and back within 10 MB
of idle 2 s after close. `--tree DIR` runs the sidecar from another checkout's `mirror/`
(e.g. `git archive <commit> mirror | tar -x -C DIR`), for a before/after figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from simulation.providers import serve_subprocess
from tests.broker import free_port, wait_for_port

SIDECAR = """
import asyncio, sys
import uvloop
from mirror.config import BusSettings, CaptureSettings, ProviderKind, ProviderSettings
from mirror.config import SidecarSettings
from mirror.sidecar.server import SidecarServer, build_sidecar

providers = {"openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=sys.argv[2])}
settings = SidecarSettings(listen=sys.argv[1])
app = build_sidecar(settings, providers, CaptureSettings(enabled=False), BusSettings())
uvloop.run(SidecarServer(app, settings.listen).serve())
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_call(port: int, body: bytes) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer sk-x\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        % len(body)
    )
    writer.write(head)
    writer.write(body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer.startswith(b"HTTP/1.1 200 ")


async def load(port: int, clients: int, body: bytes) -> int:
    results = await asyncio.gather(*(one_call(port, body) for _ in range(clients)))
    return sum(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=1500.0)
    parser.add_argument("--tree", default=None, help="run the sidecar from this tree's mirror/")
    args = parser.parse_args()
    content = b"x" * int(args.mb * 1024 * 1024)
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + content + b'"}]}'
    in_flight_mb = len(body) * args.clients / 1024 / 1024
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (args.tree, str(root)) if p)
    with serve_subprocess("openai", latency_ms=args.latency_ms) as provider:
        port = free_port()
        sidecar = subprocess.Popen(
            [sys.executable, "-c", SIDECAR, f"127.0.0.1:{port}", provider.url],
            env={**os.environ, "PYTHONPATH": path},
            cwd="/",  # `-c` puts the working directory first on the path: not this tree
        )
        try:
            wait_for_port(port)
            time.sleep(1.0)
            idle = rss_mb(sidecar.pid)
            peak = idle
            sampling = True

            def sample() -> None:
                nonlocal peak
                while sampling:
                    peak = max(peak, rss_mb(sidecar.pid))
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample)
            sampler.start()
            ok = asyncio.run(load(port, args.clients, body))
            sampling = False
            sampler.join()
            time.sleep(2.0)
            after = rss_mb(sidecar.pid)
        finally:
            sidecar.terminate()
            sidecar.wait(10)
    ratio = (peak - idle) / in_flight_mb
    print(  # noqa: T201 - a benchmark prints its line
        f"sidecar memory: peak {peak - idle:.1f} MB above idle for {in_flight_mb:.1f} MB of "
        f"bodies in flight (ratio {ratio:.2f}, goal <= 1.3); idle {idle:.1f} MB, peak "
        f"{peak:.1f} MB, 2 s after close {after:.1f} MB ({after - idle:+.1f} MB, goal <= 10); "
        f"{ok}/{args.clients} answered 200"
    )


if __name__ == "__main__":
    main()
