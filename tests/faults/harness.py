"""What the fault suite shares: topics of its own, raw reads and writes on the broker, role
processes, and their /metrics and /healthz."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
from aiokafka import AIOKafkaProducer

from mirror.bus.base import Record
from mirror.bus.scan import TopicScan
from mirror.config import TopicSettings
from mirror.events import Api, ArmResult, CapturedCall, Output


def unique_topics() -> TopicSettings:
    tag = uuid.uuid4().hex[:8]
    return TopicSettings(calls=f"f{tag}.calls", pairs=f"f{tag}.pairs", dlq=f"f{tag}.dlq")


def captured(i: int, *, request_chars: int = 0, answer_chars: int = 0) -> CapturedCall:
    return CapturedCall(
        api=Api.OPENAI_CHAT,
        segment={"route": "faults"},
        request={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": f"question {i} " + "q" * request_chars}],
        },
        primary=ArmResult(
            provider="openai",
            model="gpt-4o",
            status_code=200,
            latency_ms=20.0,
            output=Output(text=f"answer {i} " + "a" * answer_chars),
        ),
    )


async def produce_raw(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    """Messages written as they are, past the bus's own limit if need be (as a producer with
    other settings, or another tool, would)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 << 20)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[Record]:
    """Every record of `topic` now, without a group."""
    async with TopicScan(bootstrap, topic) as scan:
        return [record async for record in scan.records()]


async def committed_and_ends(
    bootstrap: str, group: str, topic: str
) -> tuple[dict[int, int], dict[int, int]]:
    """Where `group` would start (its committed offsets) and the log's end, per partition of
    `topic` (a partition the group never committed starts at the log's beginning)."""
    async with TopicScan(bootstrap, topic, group=group) as scan:
        async for _ in scan.records():
            pass
        return (
            {tp.partition: offset for tp, offset in scan.starts.items()},
            {tp.partition: offset for tp, offset in scan.ends.items()},
        )


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def scrape(port: int) -> dict[str, float]:
    """A role's /metrics as {'name{labels}': value}; empty while it is not up."""
    try:
        text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx2.HTTPError:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def health(port: int) -> dict[str, Any]:
    try:
        return dict(json.loads(httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).text))
    except httpx2.HTTPError:
        return {}


async def start_role(role: str, config: Path, log: Path, **env: str) -> asyncio.subprocess.Process:
    """`shadowjudge ROLE` in its own process, its log in `log`."""
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dashboards.command",
            "-c",
            str(config),
            "--log-level",
            "INFO",
            role,
            env={**os.environ, **env},
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )


async def stop_role(process: asyncio.subprocess.Process, timeout_s: float = 30) -> float:
    """SIGTERM, and the seconds it took to exit (it must exit 0)."""
    started = time.monotonic()
    if process.returncode is None:
        process.terminate()
    try:
        code = await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"did not exit within {timeout_s}s of SIGTERM") from None
    assert code == 0, f"exit code {code}"
    return time.monotonic() - started
