"""Runner throughput: captured calls replayed per second, end to end through Kafka.

    .venv/bin/python -m tests.benchmarks.runner_throughput [--calls 20000]

A Tansu broker, a fake OpenAI provider answering at once (its own process), and one
`shadowjudge runner` process. The calls are on `shadow.calls` before the runner starts; the
figure is pairs published per second from the first pair to the last (the runner's start-up and
group join excluded), with the CPU the runner process used over that span. The baseline line is
the same number of calls sent straight to the fake by one aiohttp process at the same
concurrency: the runner's ceiling on this machine (its physical limit), printed with the ratio
and with the CPU each side spends per 1,000 calls. The machine's load average is printed too:
on a shared machine, compare runs made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from mirror.bus.base import Record
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings
from mirror.events import Api, ArmResult, CapturedCall, Output, dump_event
from simulation.providers import serve_subprocess
from tests.broker import TansuBroker

CONFIG = """
providers:
  openai: {{kind: openai, base_url: "{fake}", api_key_env: SJ_BENCH_KEY}}
bus: {bus}
runner:
  max_in_flight: {in_flight}
  limits: {{openai: {{concurrency: {in_flight}}}}}
  metrics_listen: null
migrations:
  - name: bench
    arms: [{{name: mini, provider: openai, model: gpt-4o-mini}}]
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def call(i: int) -> CapturedCall:
    return CapturedCall(
        api=Api.OPENAI_CHAT,
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": f"question {i}"}]},
        primary=ArmResult(
            provider="openai",
            model="gpt-4o",
            status_code=200,
            latency_ms=9.0,
            output=Output(text=f"answer {i}"),
        ),
    )


async def direct_baseline(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """Calls per second of one aiohttp process straight to the fake, and its CPU seconds."""
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"question"}]}'
    headers = {"authorization": "Bearer sk", "content-type": "application/json"}
    left = iter(range(calls))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in left:
                async with session.post(
                    url + "/v1/chat/completions", data=body, headers=headers
                ) as response:
                    await response.read()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return calls / (time.perf_counter() - started), time.process_time() - cpu


async def measure(broker: TansuBroker, fake_url: str, calls: int, in_flight: int) -> None:
    settings = BusSettings(url=broker.url)
    bus = KafkaBus(settings)
    await bus.start()
    deliveries = []
    for i in range(calls):
        captured = call(i)
        deliveries.append(
            await bus.send(
                settings.topics.calls, dump_event(captured), key=captured.call_id.encode()
            )
        )
    await asyncio.gather(*deliveries)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "shadowjudge.yaml"
        config.write_text(CONFIG.format(fake=fake_url, bus=broker.url, in_flight=in_flight))
        runner = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dashboards.command",
            "-c",
            str(config),
            "--log-level",
            "WARNING",
            "runner",
            env={**os.environ, "SJ_BENCH_KEY": "sk-bench"},
        )
        consumer = bus.consumer([settings.topics.pairs], group="bench-reader")
        await consumer.start()
        seen = 0
        first = last = cpu_first = cpu_last = 0.0
        try:
            while seen < calls:
                records: list[Record] = await consumer.getmany(timeout_ms=200, max_records=5000)
                if records and not seen:
                    first, cpu_first = time.perf_counter(), cpu_seconds(runner.pid)
                seen += len(records)
                last, cpu_last = time.perf_counter(), cpu_seconds(runner.pid)
        finally:
            await consumer.stop()
            runner.terminate()
            await runner.wait()
            await bus.stop()
    span = last - first
    baseline, baseline_cpu = await direct_baseline(fake_url, calls, in_flight)
    rate, cpu = seen / span, cpu_last - cpu_first
    print(  # noqa: T201
        f"runner {rate:,.0f} calls/s end to end through Kafka, {rate / baseline:.2f} of the raw "
        f"client's {baseline:,.0f} calls/s (the physical limit: one aiohttp process straight "
        f"to the fake); CPU per 1,000 calls: runner {cpu / seen * 1e6:.0f} ms "
        f"({cpu / span:.0%} of a core), raw client {baseline_cpu / calls * 1e6:.0f} ms "
        f"({seen:,} pairs in {span:.1f} s, load {os.getloadavg()[0]:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=128)
    args = parser.parse_args()
    broker = TansuBroker()
    broker.start()
    try:
        with serve_subprocess("openai") as fake:
            asyncio.run(measure(broker, fake.url, args.calls, args.in_flight))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
