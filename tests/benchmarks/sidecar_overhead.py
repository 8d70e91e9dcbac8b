"""Sidecar overhead: the same load, direct to a fake provider and through the sidecar.

    .venv/bin/python -m tests.benchmarks.sidecar_overhead [--rate 200] [--seconds 30]
    .venv/bin/python -m tests.benchmarks.sidecar_overhead --in-run --backlog 20000 --seconds 10

One run, three processes besides this one: a fake OpenAI provider, the sidecar (`shadowjudge
mirror`, publishing every capture to a Tansu Kafka broker, which is the fourth). This process
sends requests at a fixed mean rate, Poisson arrivals, each call's path (direct or via the
sidecar) drawn at random, so both paths see the same machine load and no phase of it; first
non-streaming chat completions, then streaming ones. With `--in-run` the dashboards' pages are
asked without pause from a process of their own. It prints the p50 and
p99 latency added by the sidecar and the TTFT it adds on streams (time to the first content
chunk), the errors on each path, and what the sidecar captured and dropped.

`--in-run --backlog N` measures three set-ups one after another and prints them side by side:
the sidecar alone (`mirror`), the sidecar inside `run` with only the load's own replays, and
inside `run` while the judge works through a backlog. The backlog is made honestly, through the
live path: before each phase (non-stream, stream) a burst of calls goes through the sidecar as
fast as it takes them, each replayed to four candidate arms and the noise arm (five pairs a
call), so the burst leaves at least N pairs for the runner to make and the judge to score. The
pairs still unjudged at the end of each phase are printed, so a judge that caught up early is
seen, not hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


#: `--backlog`: the same, with five pairs a call and room for the runner to replay a burst fast.
BACKLOG = """store: {{url: "chdb://{store}", batch_seconds: 0.5}}
dashboards: {{listen: "127.0.0.1:{pages}"}}
runner: {{limits: {{openai: {{concurrency: 128}}}}}}
migrations:
  - name: bench
    noise_rate: 1.0
    arms:
      - {{name: again, provider: openai, model: gpt-4o}}
      - {{name: mini, provider: openai, model: gpt-4o-mini}}
      - {{name: four-one, provider: openai, model: gpt-4.1}}
      - {{name: nano, provider: openai, model: gpt-4.1-nano}}
triggers:
  interval_s: 5
  rules:
    - {{name: eq, metric: equivalence_rate, threshold: 0.9, window: 1h}}
    - {{name: tail, metric: latency_ratio, margin: 0.3, window: 1h}}
"""
PAIRS_PER_CALL = 5


def read_pages(base: str, stop: Any, times: Any) -> None:
    """Ask the dashboards' pages one after another until `stop` is set; put the list of
    answer times (ms) and the error count on `times`."""
    answered: list[float] = []
    errors = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            for page in PageReader.PAGES:
                started = time.perf_counter()
                try:
                    answer = client.get(page)
                except httpx.HTTPError:
                    errors += 1
                    time.sleep(0.2)
                    continue
                if answer.status_code == 200:
                    answered.append((time.perf_counter() - started) * 1000)
                else:  # 404 until the first pairs are judged
                    time.sleep(0.2)
    times.put((answered, errors))


class PageReader:
    """Asks the dashboards' overview, migration page and review queue one after another, in a
    process of its own, until stopped: the pages busy while the sidecar is measured. Not a
    thread of this process: its parsing would hold the interpreter lock the measuring loop
    needs to read each answer, up to the switch interval (5 ms) at a time."""

    PAGES = ("/?window=1h", "/migrations/bench?window=1h", "/review?window=1h")

    def __init__(self, base: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._times: Any = context.Queue()
        self._process = context.Process(
            target=read_pages, args=(base, self._stop, self._times), daemon=True
        )
        self._process.start()

    def summary(self) -> str:
        self._stop.set()
        try:
            times, errors = self._times.get(timeout=60)
        finally:
            self._process.join(30)
        if not times:
            return f"dashboards: no page answered ({errors} errors)"
        ordered = sorted(times)
        p50 = ordered[len(ordered) // 2]
        return (
            f"dashboards asked {len(ordered)} times during the load: p50 {p50:.0f} ms,"
            f" max {ordered[-1]:.0f} ms, {errors} errors"
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
    direct_url: str, sidecar_url: str, rate: float, seconds: float, stream: bool, seed: int = 0
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
        # Poisson arrivals, each call's path drawn at random: a fixed period would lock the
        # paths to phases of the load (with a fake answering in a fixed time, a replay the
        # runner sends after a call through the sidecar would end with every second call
        # after it, always on the same path).
        rng = random.Random(seed)
        at = time.perf_counter()
        for _ in range(int(rate * seconds)):
            at += rng.expovariate(rate)
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target, url = (direct, direct_url) if rng.random() < 0.5 else (via, sidecar_url)
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


def metric_sum(url: str, prefix: str) -> float:
    """The sum of every sample of the counter `prefix` (all labels) on the sidecar's /metrics."""
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(prefix) and (line[len(prefix)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def unjudged(url: str) -> tuple[float, float]:
    """(calls captured but not yet read by the runner, pairs made or still to be made that
    the judge has not read), from the counters the sidecar's /metrics merges for every role."""
    answered = metric_sum(url, "shadowjudge_sidecar_requests_total")
    dropped = metric_sum(url, "shadowjudge_sidecar_dropped_total")
    consumed = metric_sum(url, "shadowjudge_runner_consumed_total")
    judged = metric_sum(url, "shadowjudge_judge_pairs_total")
    # Every call answered and not dropped makes PAIRS_PER_CALL pairs, read or still to come.
    calls = answered - dropped
    return max(0.0, calls - consumed), max(0.0, calls * PAIRS_PER_CALL - judged)


def wait_ready(url: str, timeout_s: float = 60.0, settle_s: float = 2.0) -> None:
    """Until every role on the sidecar's /healthz is past starting (the store open, the judge
    running), then `settle_s` more: the port answers before the roles have started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            roles = httpx.get(url + "/healthz", timeout=5).json().get("roles", {})
        except httpx.HTTPError:
            roles = {"sidecar": {"status": "starting"}}
        if all(state.get("status") == "ok" for state in roles.values()):
            break
        time.sleep(0.2)
    time.sleep(settle_s)


async def burst(sidecar_url: str, calls: int, concurrency: int = 64) -> float:
    """`calls` non-streaming calls through the sidecar, `concurrency` at a time; seconds taken."""
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"Backlog question"}]}'
    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    sink = PathStats("burst")

    async def call(session: aiohttp.ClientSession) -> None:
        async with gate:
            await one(session, sidecar_url + "/v1/chat/completions", body, False, sink)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(call(session) for _ in range(calls)))
    if sink.errors:
        print(f"burst: {sink.errors} error(s)")  # noqa: T201
    return time.perf_counter() - started


@dataclass
class Row:
    """One set-up's figures: per kind, (p50 added, p99 added, TTFT p50 added, TTFT p99 added)."""

    name: str
    added: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def added(direct: PathStats, via: PathStats) -> tuple[float, float, float, float]:
    def diff(a: list[float], b: list[float], q: float) -> float:
        return percentile(b, q) - percentile(a, q)

    return (
        diff(direct.latency_ms, via.latency_ms, 0.5),
        diff(direct.latency_ms, via.latency_ms, 0.99),
        diff(direct.ttft_ms, via.ttft_ms, 0.5),
        diff(direct.ttft_ms, via.ttft_ms, 0.99),
    )


def measure(
    args: argparse.Namespace, fake_url: str, broker_url: str, command: str, backlog: int
) -> Row:
    """One set-up: `shadowjudge <command>` started afresh, both phases, optionally each after
    a burst that leaves `backlog` pairs to judge."""
    name = "sidecar alone" if command == "mirror" else "in run"
    if backlog:
        name += f", backlog {backlog}"
    row = Row(name)
    port, pages = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "shadowjudge.yaml"
        config.write_text(
            f"providers:\n  openai: {{kind: openai, base_url: '{fake_url}'}}\n"
            f"sidecar: {{listen: '127.0.0.1:{port}', cpu_slice_us: {args.cpu_slice_us}}}\n"
            f"bus: {'memory://' if command == 'run' else broker_url}\n"
            f"capture: {{publish_delay_ms: {args.publish_delay_ms}}}\n"
            f"run: {{cpu_policy: {args.cpu_policy}}}\n"
            + (BACKLOG.format(store=Path(tmp) / "store", pages=pages) if command == "run" else "")
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboards.command", "-c", str(config)]
            + ["--log-level", "WARNING", command],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for_port(port)
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            busy_pages = command == "run" and not args.quiet_pages
            readers = PageReader(f"http://127.0.0.1:{pages}") if busy_pages else None
            for stream in (False, True):
                kind = "stream" if stream else "non-stream"
                if backlog:
                    calls = -(-backlog // PAIRS_PER_CALL)
                    took = asyncio.run(burst(url, calls))
                    _, left = unjudged(url)
                    row.notes.append(
                        f"{kind}: burst of {calls} calls in {took:.1f}s, {left:.0f} pairs"
                        " left to judge when the phase began"
                    )
                direct, via = asyncio.run(load(fake_url, url, args.rate, args.seconds, stream))
                report(f"{name}: {kind}", direct, via)
                row.added[kind] = added(direct, via)
                if command == "run":
                    calls_left, left = unjudged(url)
                    row.notes.append(
                        f"{kind}: at the phase's end {calls_left:.0f} calls not yet read by the"
                        f" runner, {left:.0f} pairs not yet judged"
                    )
            if readers is not None:
                row.notes.append(readers.summary())
        finally:
            process.terminate()
            process.wait(60)
    return row


def side_by_side(rows: list[Row]) -> None:
    print(  # noqa: T201
        f"\n{'added by the sidecar (ms)':<28} {'non-stream p50/p99':>20} {'stream p50/p99':>16}"
        f" {'TTFT p50/p99':>14}"
    )
    for row in rows:
        n50, n99, _, _ = row.added["non-stream"]
        s50, s99, t50, t99 = row.added["stream"]
        print(  # noqa: T201
            f"{row.name:<28} {n50:>9.2f} / {n99:<8.2f} {s50:>6.2f} / {s99:<7.2f}"
            f" {t50:>5.2f} / {t99:<6.2f}"
        )
    for row in rows:
        for note in row.notes:
            print(f"  {row.name}: {note}")  # noqa: T201


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
        "--cpu-slice-us",
        type=int,
        default=100,
        help="sidecar.cpu_slice_us, the CPU slice the sidecar's process asks for (0: the"
        " kernel's default), to compare",
    )
    parser.add_argument(
        "--publish-delay-ms",
        type=float,
        default=3.0,
        help="capture.publish_delay_ms, how long after a call its capture is built (0: in the"
        " loop's next turn), to compare",
    )
    parser.add_argument(
        "--cpu-policy",
        choices=("idle", "normal"),
        default="idle",
        help="with --in-run: run.cpu_policy, the CPU policy of run's own threads, to compare",
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
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        metavar="PAIRS",
        help="with --in-run: the sidecar alone, inside run, and inside run with the judge"
        " working through at least PAIRS pairs (a burst of calls before each phase), side by side",
    )
    args = parser.parse_args()

    broker = TansuBroker()
    broker.start()
    if args.in_run and args.backlog:
        try:
            with serve_subprocess(
                "openai", latency_ms=args.latency_ms, ttft_ms=args.ttft_ms
            ) as fake:
                rows = [
                    measure(args, fake.url, broker.url, "mirror", 0),
                    measure(args, fake.url, broker.url, "run", 0),
                    measure(args, fake.url, broker.url, "run", args.backlog),
                ]
            side_by_side(rows)
        finally:
            broker.stop()
        return
    port = free_port()
    with (
        serve_subprocess("openai", latency_ms=args.latency_ms, ttft_ms=args.ttft_ms) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        config = Path(tmp) / "shadowjudge.yaml"
        pages = free_port()
        config.write_text(
            f"providers:\n  openai: {{kind: openai, base_url: '{fake.url}'}}\n"
            f"sidecar: {{listen: '127.0.0.1:{port}', cpu_slice_us: {args.cpu_slice_us}}}\n"
            f"bus: {'memory://' if args.memory_bus or args.in_run else broker.url}\n"
            f"capture: {{enabled: {'false' if args.no_capture else 'true'},"
            f" publish_delay_ms: {args.publish_delay_ms}}}\n"
            + (f"run: {{cpu_policy: {args.cpu_policy}}}\n" if args.in_run else "")
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
            busy_pages = args.in_run and not args.quiet_pages
            readers = PageReader(f"http://127.0.0.1:{pages}") if busy_pages else None
            for stream in (False, True):
                direct, via = asyncio.run(
                    load(fake.url, sidecar_url, args.rate, args.seconds, stream)
                )
                report("stream" if stream else "non-stream", direct, via)
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
