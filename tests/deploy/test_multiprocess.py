"""The distributed form on one machine: two sidecars, two runners and a judge, each its own
`shadowjudge` process, on a real Kafka-protocol broker (Tansu), the judge owning the chDB store.

A load client sends 10,000 calls through the two sidecars (half each) to a fake OpenAI in its
own process; the runners replay each call to the candidate arm (the same fake) and publish the
pairs; the judge writes them. One runner is there from the start; the second joins once about
a third of the calls are sent and leaves (SIGTERM: it drains, commits, and its partitions move
back) at about two thirds, so the consumer group of `shadow.calls` rebalances twice mid-run.
Whatever a rebalance replays reaches the judge twice; the store still holds every
(call, arm) exactly once, the aggregates count each once, and every call sent is there.

Prints the pairs per second the whole chain sustained (first call sent to last pair written).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import httpx2
import pytest

from judge.config import StoreSettings
from judge.store.store import Store
from simulation.providers import serve_subprocess
from tests.broker import TansuBroker, free_port, wait_for_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

CALLS = 10_000
CONCURRENCY = 48  # per sidecar
CONFIG = """
providers:
  openai: {{kind: openai, base_url: "{fake}", api_key_env: SJ_DEPLOY_KEY}}
sidecar: {{listen: "127.0.0.1:{sidecar}"}}
bus:
  url: {bus}
  topics: {{calls: deploy.calls, pairs: deploy.pairs, dlq: deploy.dlq, control: deploy.control}}
  partitions: 6
  producer: {{linger_ms: 5}}
  consumer: {{session_timeout_ms: 6000, heartbeat_interval_ms: 500}}
store: {{url: "chdb://{store}", batch_rows: 5000, batch_seconds: 0.5}}
judge: {{metrics_listen: "127.0.0.1:{judge}"}}
runner:
  max_in_flight: 512
  drain_timeout_s: 20
  limits: {{openai: {{concurrency: 256}}}}
  metrics_listen: "127.0.0.1:{runner}"
migrations:
  - name: deploy
    noise_rate: 0.0
    arms: [{{name: mini, provider: openai, model: gpt-4o-mini}}]
"""


class Role:
    """One `shadowjudge -c CONFIG ROLE` process with its own settings file and ports."""

    def __init__(self, tmp: Path, name: str, command: str, **values: object) -> None:
        self.name, self.command = name, command
        self.sidecar, self.runner, self.judge = free_port(), free_port(), free_port()
        self.config = tmp / f"{name}.yaml"
        self.config.write_text(
            CONFIG.format(sidecar=self.sidecar, runner=self.runner, judge=self.judge, **values)
        )
        self.process: asyncio.subprocess.Process | None = None

    @property
    def port(self) -> int:
        return {"mirror": self.sidecar, "runner": self.runner, "judge": self.judge}[self.command]

    async def start(self) -> None:
        env = {**os.environ, "SJ_DEPLOY_KEY": "sk-deploy"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dashboards.command", "-c", str(self.config),
            "--log-level", "WARNING", self.command, env=env,
        )  # fmt: skip
        await asyncio.to_thread(wait_for_port, self.port, 30)

    def metric(self, name: str) -> float:
        text = httpx2.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")
        )

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)


async def send(session: aiohttp.ClientSession, sidecar: int, ids: range, sent: list[int]) -> None:
    queue = iter(ids)

    async def worker() -> None:
        for i in queue:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{i}"}]}
            async with session.post(
                f"http://127.0.0.1:{sidecar}/v1/chat/completions",
                json=body,
                headers={"authorization": "Bearer sk-app"},
            ) as answer:
                assert answer.status == 200, await answer.text()
                await answer.read()
            sent.append(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_two_sidecars_two_runners_one_judge_count_every_call_once(
    own_kafka: TansuBroker, tmp_path: Path
) -> None:
    with serve_subprocess("openai") as fake:
        values = {"fake": fake.url, "bus": own_kafka.url, "store": tmp_path / "store"}
        judge = Role(tmp_path, "judge", "judge", **values)
        runners = [Role(tmp_path, f"runner{n}", "runner", **values) for n in (1, 2)]
        sidecars = [Role(tmp_path, f"sidecar{n}", "mirror", **values) for n in (1, 2)]
        await asyncio.gather(judge.start(), runners[0].start(), *(s.start() for s in sidecars))
        try:
            sent: list[int] = []
            half = CALLS // 2
            connector = aiohttp.TCPConnector(limit=2 * CONCURRENCY)
            started = time.monotonic()
            async with aiohttp.ClientSession(connector=connector) as session:
                load = asyncio.gather(
                    send(session, sidecars[0].sidecar, range(0, half), sent),
                    send(session, sidecars[1].sidecar, range(half, CALLS), sent),
                )
                # The second runner joins a third of the way in and leaves at two thirds.
                await wait_for(lambda: len(sent) >= CALLS // 3, "a third of the calls", 120)
                await runners[1].start()
                await wait_for(
                    lambda: runners[1].metric("shadowjudge_runner_consumed_total") > 0,
                    "the second runner to get partitions",
                    60,
                )
                await wait_for(lambda: len(sent) >= 2 * CALLS // 3, "two thirds", 120)
                second_consumed = runners[1].metric("shadowjudge_runner_consumed_total")
                assert await runners[1].stop() == 0
                await load
            sent_in = time.monotonic() - started
            assert sorted(sent) == list(range(CALLS))
            captured = sum(s.metric("shadowjudge_sidecar_captured_total") for s in sidecars)
            assert captured == CALLS
            await wait_for(
                lambda: judge.metric("shadowjudge_judge_written_total") >= CALLS,
                "every pair written",
                180,
            )
            elapsed = time.monotonic() - started
            first_consumed = runners[0].metric("shadowjudge_runner_consumed_total")
            duplicates = judge.metric("shadowjudge_judge_duplicates_total")
        finally:
            codes = await asyncio.gather(
                *(role.stop() for role in [*sidecars, runners[0], judge] if role.process)
            )
    assert codes == [0] * len(codes)
    # Both runners worked: the group handed the second one partitions, then took them back.
    assert second_consumed > 0 and first_consumed > 0
    assert first_consumed + second_consumed >= CALLS
    with Store.open(StoreSettings(url=f"chdb://{tmp_path / 'store'}"), create=False) as store:
        rows = store.select(
            "SELECT count() AS n, uniqExact(call_id, arm) AS keys,"
            " uniqExact(JSONExtractString(pair_json, 'call', 'request', 'messages', 1, 'content'))"
            " AS questions FROM pairs"
        )
        assert rows == [{"n": CALLS, "keys": CALLS, "questions": CALLS}]
        assert store.count_comparisons("deploy") == CALLS
        compared = store.select("SELECT count() AS n, uniqExact(call_id) AS calls FROM comparisons")
        assert compared == [{"n": CALLS, "calls": CALLS}]
        assert store.aggregate_counts("deploy")["pairs"] == CALLS
    print(  # noqa: T201 - the figure the deploy README quotes
        f"multi-process run: {CALLS} pairs in {elapsed:.1f} s = {CALLS / elapsed:.0f} pairs/s"
        f" (calls sent through the sidecars in {sent_in:.1f} s)"
        f" (runner 1 read {first_consumed:.0f} calls, runner 2 {second_consumed:.0f};"
        f" the judge dropped {duplicates:.0f} replayed pairs as duplicates)"
    )
