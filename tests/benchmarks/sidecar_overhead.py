"""Sidecar overhead: the same fixed-rate load, direct to a fake provider and through the sidecar.

    .venv/bin/python -m tests.benchmarks.sidecar_overhead [--rate 200] [--seconds 30]

One run, three processes besides this one: a fake OpenAI provider, the sidecar (`shadowjudge
mirror`, publishing every capture to a Tansu Kafka broker, which is the fourth). This process
sends requests at a fixed rate, alternating direct and via-sidecar, so both paths see the same
machine load; first non-streaming chat completions, then streaming ones. It prints the p50 and
p99 latency added by the sidecar and the TTFT it adds on streams (time to the first content
chunk), the errors on each path, and what the sidecar captured and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

from simulation.providers import serve_subprocess
from tests.broker import TansuBroker, free_port, wait_for_port

CONTENT = re.compile(rb'"content":"[^"]')
#: `--in-run`: a migration replaying every call to the same fake twice (an arm and the noise
#: arm), trigger rules, and the pages' address.
IN_RUN = """store: {{url: "chdb://{store}", batch_seconds: 0.5}}
dashboards: {{listen: "127.0.0.1:{pages}"}}
migrations:
  - {{name: bench, noise_rate: 1.0, arms: [{{name: again, provider: openai, model: gpt-4o}}]}}
triggers:
  interval_s: 5
  rules:
    - {{name: eq, metric: equivalence_rate, threshold: 0.9, window: 1h}}
    - {{name: tail, metric: latency_ratio, margin: 0.3, window: 1h}}
"""


class PageReader:
    """Asks the dashboards' overview, migration page and review queue one after another, in a
    thread, until stopped: the pages busy while the sidecar is measured."""

    PAGES = ("/?window=1h", "/migrations/bench?window=1h", "/review?window=1h")

    def __init__(self, base: str, stop: threading.Event) -> None:
        self.base, self.stop = base, stop
        self.times: list[float] = []
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                for page in self.PAGES:
                    started = time.perf_counter()
                    try:
                        answer = client.get(page)
                    except httpx.HTTPError:
                        self.errors += 1
                        time.sleep(0.2)
                        continue
                    if answer.status_code == 200:
                        self.times.append((time.perf_counter() - started) * 1000)
                    else:  # 404 until the first pairs are judged
                        time.sleep(0.2)

    def summary(self) -> str:
        self.thread.join(30)
        if not self.times:
            return f"dashboards: no page answered ({self.errors} errors)"
        ordered = sorted(self.times)
        p50 = ordered[len(ordered) // 2]
        return (
            f"dashboards asked {len(ordered)} times during the load: p50 {p50:.0f} ms,"
            f" max {ordered[-1]:.0f} ms, {self.errors} errors"
        )


@dataclass
class PathStats:
    name: str
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    errors: int = 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, into: PathStats
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(
            url,
            data=body,
            headers={"authorization": "Bearer sk-bench", "content-type": "application/json"},
        ) as response:
            first: float | None = None
            async for chunk in response.content.iter_any():
                if stream and first is None and CONTENT.search(chunk):
                    first = time.perf_counter()
            if response.status != 200:
                into.errors += 1
                return
    except aiohttp.ClientError:
        into.errors += 1
        return
    into.latency_ms.append((time.perf_counter() - started) * 1000)
    if first is not None:
        into.ttft_ms.append((first - started) * 1000)


async def load(
    direct_url: str, sidecar_url: str, rate: float, seconds: float, stream: bool
) -> tuple[PathStats, PathStats]:
    direct, via = PathStats("direct"), PathStats("sidecar")
    body = (
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"Benchmark question '
        b'about latency"}]'
        + (b',"stream":true,"stream_options":{"include_usage":true}}' if stream else b"}")
    )
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm both paths (connections, caches) before measuring.
        await asyncio.gather(
            *(
                one(session, u + "/v1/chat/completions", body, stream, PathStats("w"))
                for u in (direct_url, sidecar_url)
                for _ in range(50)
            )
        )
        tasks = []
        interval = 1.0 / rate
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target, url = (direct, direct_url) if i % 2 == 0 else (via, sidecar_url)
            tasks.append(
                asyncio.create_task(
                    one(session, url + "/v1/chat/completions", body, stream, target)
                )
            )
        await asyncio.gather(*tasks)
    return direct, via


def report(kind: str, direct: PathStats, via: PathStats) -> None:
    d50, d99 = percentile(direct.latency_ms, 0.5), percentile(direct.latency_ms, 0.99)
    s50, s99 = percentile(via.latency_ms, 0.5), percentile(via.latency_ms, 0.99)
    line = (
        f"{kind}: sidecar p50 added {s50 - d50:.2f} ms, p99 added {s99 - d99:.2f} ms "
        f"(direct p50 {d50:.2f}/p99 {d99:.2f} ms, via sidecar p50 {s50:.2f}/p99 {s99:.2f} ms, "
        f"n={len(direct.latency_ms)}+{len(via.latency_ms)}, "
        f"errors direct {direct.errors} sidecar {via.errors})"
    )
    if direct.ttft_ms:
        t_d, t_s = percentile(direct.ttft_ms, 0.5), percentile(via.ttft_ms, 0.5)
        t_d99, t_s99 = percentile(direct.ttft_ms, 0.99), percentile(via.ttft_ms, 0.99)
        line += (
            f"; TTFT p50 added {t_s - t_d:.2f} ms, p99 added {t_s99 - t_d99:.2f} ms "
            f"(direct {t_d:.2f}, via sidecar {t_s:.2f})"
        )
    print(line)  # noqa: T201


def sidecar_metrics(url: str) -> dict[str, float]:
    import httpx2

    found: dict[str, float] = {}
    for line in httpx2.get(url + "/metrics").text.splitlines():
        if line.startswith(
            ("shadowjudge_sidecar_captured_total", "shadowjudge_sidecar_dropped_total")
        ):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s, both paths")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="fake provider latency")
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="fake provider TTFT")
    parser.add_argument(
        "--no-capture",
        action="store_true",
        help="diagnostic: the sidecar as a bare proxy, capture off",
    )
    parser.add_argument(
        "--memory-bus",
        action="store_true",
        help="diagnostic: capture on, published to the in-process bus instead of Kafka",
    )
    parser.add_argument(
        "--in-run",
        action="store_true",
        help="the sidecar inside `shadowjudge run` (memory bus, chDB), with a migration that"
        " replays every call twice, so the runner and the judge are busy, trigger rules"
        " evaluated every 5 s, and the dashboards' pages asked without pause",
    )
    parser.add_argument(
        "--quiet-pages",
        action="store_true",
        help="with --in-run: leave the dashboards' pages alone (the judge and triggers still run)",
    )
    args = parser.parse_args()

    broker = TansuBroker()
    broker.start()
    port = free_port()
    with (
        serve_subprocess("openai", latency_ms=args.latency_ms, ttft_ms=args.ttft_ms) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        config = Path(tmp) / "shadowjudge.yaml"
        pages = free_port()
        config.write_text(
            f"providers:\n  openai: {{kind: openai, base_url: '{fake.url}'}}\n"
            f"sidecar: {{listen: '127.0.0.1:{port}'}}\n"
            f"bus: {'memory://' if args.memory_bus or args.in_run else broker.url}\n"
            f"capture: {{enabled: {'false' if args.no_capture else 'true'}}}\n"
            + (IN_RUN.format(store=Path(tmp) / "store", pages=pages) if args.in_run else "")
        )
        sidecar = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dashboards.command",
                "-c",
                str(config),
                "--log-level",
                "WARNING",
                "run" if args.in_run else "mirror",
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for_port(port)
            sidecar_url = f"http://127.0.0.1:{port}"
            stop = threading.Event()
            busy_pages = args.in_run and not args.quiet_pages
            readers = PageReader(f"http://127.0.0.1:{pages}", stop) if busy_pages else None
            for stream in (False, True):
                direct, via = asyncio.run(
                    load(fake.url, sidecar_url, args.rate, args.seconds, stream)
                )
                report("stream" if stream else "non-stream", direct, via)
            stop.set()
            if readers is not None:
                print(readers.summary())  # noqa: T201
            time.sleep(1)
            print(f"sidecar publisher (Kafka): {sidecar_metrics(sidecar_url)}")  # noqa: T201
        finally:
            sidecar.terminate()
            sidecar.wait(30)
            broker.stop()


if __name__ == "__main__":
    main()
