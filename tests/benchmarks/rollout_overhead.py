"""Staged-rollout overhead: what a served call costs against a direct call, and what a live
rollout costs the calls it does not serve.

    .venv/bin/python -m tests.benchmarks.rollout_overhead [--rate 100] [--seconds 10]

Processes: a fake OpenAI and a fake Anthropic provider, and a sidecar (capture on, memory
bus) serving two migrations at weight 1: `gpt-4o-served` from an OpenAI arm (the same API,
passed through) and `gpt-4o-translated` from an Anthropic arm (translated both ways).
This process sends, at a fixed rate and in turn: a call direct to the OpenAI fake, the same
call through the sidecar not served (`gpt-4o`: the byte pipe, paying the rollout's decision),
a served call, a translated call, and the translated call's Anthropic request direct to the
Anthropic fake; first whole, then streamed; and the plain call through a second sidecar with
no rollout configured (`plain`), so the pipe's cost of a live rollout shows on its own. It
prints the p50/p99 each path adds over its direct counterpart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp

from simulation.providers import serve_subprocess
from tests.broker import free_port, wait_for_port

QUESTION = b'[{"role":"user","content":"Benchmark question about latency"}]'
OPENAI_HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}
ANTHROPIC_HEADERS = {
    "x-api-key": "sk-ant-bench",
    "anthropic-version": "2026-10-21",
    "content-type": "application/json",
}


@dataclass
class Path:
    name: str
    url: str
    body: bytes
    headers: dict[str, str]
    latency_ms: list[float] = field(default_factory=list)
    errors: int = 0


def bodies(stream: bool) -> dict[str, tuple[bytes, bool]]:
    """Per path: the body, and whether it is an Anthropic request."""
    tail = b',"stream":true,"stream_options":{"include_usage":true}}' if stream else b"}"
    chat = b'{"model":"%s","messages":' + QUESTION + tail
    messages = (
        b'{"model":"claude-sonnet-4-6","max_tokens":4096,"messages":'
        + QUESTION
        + (b',"stream":true}' if stream else b"}")
    )
    return {
        "direct": (chat % b"gpt-4o", False),
        "plain": (chat % b"gpt-4o", False),
        "pipe": (chat % b"gpt-4o", False),
        "served": (chat % b"gpt-4o-served", False),
        "translated": (chat % b"gpt-4o-translated", False),
        "direct-anthropic": (messages, True),
    }


async def one(session: aiohttp.ClientSession, path: Path) -> None:
    started = time.perf_counter()
    try:
        async with session.post(path.url, data=path.body, headers=path.headers) as response:
            async for _ in response.content.iter_any():
                pass
            if response.status != 200:
                path.errors += 1
                return
    except aiohttp.ClientError:
        path.errors += 1
        return
    path.latency_ms.append((time.perf_counter() - started) * 1000)


async def load(paths: list[Path], rate: float, seconds: float) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        warm = [Path(p.name, p.url, p.body, p.headers) for p in paths for _ in range(20)]
        await asyncio.gather(*(one(session, p) for p in warm))
        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, paths[i % len(paths)])))
        await asyncio.gather(*tasks)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(kind: str, paths: dict[str, Path]) -> None:
    def added(name: str, base: str) -> str:
        p, b = paths[name], paths[base]
        return (
            f"{name} +{pct(p.latency_ms, 0.5) - pct(b.latency_ms, 0.5):.2f} ms p50"
            f" / +{pct(p.latency_ms, 0.99) - pct(b.latency_ms, 0.99):.2f} ms p99"
        )

    direct = paths["direct"]
    errors = sum(p.errors for p in paths.values())
    print(  # noqa: T201
        f"rollout overhead ({kind}): {added('plain', 'direct')}, {added('pipe', 'direct')},"
        f" {added('served', 'direct')},"
        f" {added('translated', 'direct-anthropic')} (direct p50"
        f" {pct(direct.latency_ms, 0.5):.2f} ms, n={len(direct.latency_ms)} per path,"
        f" errors {errors})"
    )


def sidecar_child(port: int, openai_url: str, anthropic_url: str, rollout: bool) -> None:
    """The sidecar under measurement, in a process of its own (as `shadowjudge mirror`)."""
    import uvloop

    from mirror.bus.memory import MemoryBus
    from mirror.config import BusSettings, CaptureSettings, ProviderSettings, SidecarSettings
    from mirror.events import ProviderKind
    from mirror.migrations import MigrationSettings
    from mirror.sidecar.server import SidecarServer, build_sidecar

    os.environ["BENCH_ANTHROPIC_KEY"] = "sk-ant-bench"
    providers = {
        "openai": ProviderSettings(kind=ProviderKind.OPENAI, base_url=openai_url),
        "anthropic": ProviderSettings(
            kind=ProviderKind.ANTHROPIC, base_url=anthropic_url, api_key_env="BENCH_ANTHROPIC_KEY"
        ),
    }
    migrations = [
        MigrationSettings.model_validate(
            {
                "name": name,
                "match": {"model": [model]},
                "arms": [arm],
                "rollout": {"weight": 1.0},
            }
        )
        for name, model, arm in (
            ("served", "gpt-4o-served", {"name": "a", "provider": "openai", "model": "gpt-4o"}),
            (
                "translated",
                "gpt-4o-translated",
                {"name": "a", "provider": "anthropic", "model": "claude-sonnet-4-6"},
            ),
        )
    ]
    settings = SidecarSettings(listen=f"127.0.0.1:{port}", upstream_keepalive_s=2)
    sidecar = build_sidecar(
        settings,
        providers,
        CaptureSettings(),
        BusSettings(),
        bus=MemoryBus(),
        migrations=migrations if rollout else (),
    )
    uvloop.run(SidecarServer(sidecar, settings.listen).serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode (whole, stream)")
    parser.add_argument(
        "--sidecar-child", nargs=4, metavar=("PORT", "OPENAI", "ANTHROPIC", "ROLLOUT")
    )
    args = parser.parse_args()
    if args.sidecar_child:
        port, openai_url, anthropic_url, rollout = args.sidecar_child
        sidecar_child(int(port), openai_url, anthropic_url, rollout == "1")
        return
    with serve_subprocess("openai") as oai, serve_subprocess("anthropic") as ant:
        ports = {"1": free_port(), "0": free_port()}
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.benchmarks.rollout_overhead",
                    "--sidecar-child",
                    str(port),
                    oai.url,
                    ant.url,
                    rollout,
                ]
            )
            for rollout, port in ports.items()
        ]
        try:
            for port in ports.values():
                wait_for_port(port, timeout_s=30)
            for stream in (False, True):
                paths = {}
                for name, (body, is_anthropic) in bodies(stream).items():
                    if name == "direct-anthropic":
                        url = ant.url + "/v1/messages"
                    elif name == "direct":
                        url = oai.url + "/v1/chat/completions"
                    else:
                        port = ports["0" if name == "plain" else "1"]
                        url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    headers = ANTHROPIC_HEADERS if is_anthropic else OPENAI_HEADERS
                    paths[name] = Path(name, url, body, headers)
                asyncio.run(load(list(paths.values()), args.rate, args.seconds))
                report("stream" if stream else "whole", paths)
        finally:
            for child in children:
                child.terminate()
                child.wait(10)


if __name__ == "__main__":
    main()
