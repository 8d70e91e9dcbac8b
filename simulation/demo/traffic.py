"""The demo's app: the shop's support assistant calling the sidecar with the official OpenAI SDK.

`Traffic` sends `scenario.draw_call` requests at a steady rate (Poisson arrivals), each in its
own task so a slow answer never holds the next call back, exactly as a web app under load
would. It labels each call with `x-demo-user` and `x-demo-plan` headers (the demo's settings
read them as segments and the rollout's sticky key) and counts what came back: answers,
errors by status, streamed calls, and which model answered (the `model` the SDK parsed: the
candidate's name once the rollout serves it).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import openai

from simulation.demo import scenario
from simulation.demo.models import PRIMARY_MODEL

log = logging.getLogger("shadowjudge.demo")


@dataclass(slots=True)
class Counts:
    sent: int = 0
    answered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        served = ", ".join(f"{model} {n}" for model, n in self.models.most_common())
        errors = ", ".join(f"{kind} {n}" for kind, n in self.errors.most_common())
        return (
            f"{self.sent} calls sent, {self.answered} answered ({served}), "
            f"{sum(self.errors.values())} errors{f' ({errors})' if errors else ''}"
        )


class Traffic:
    """Calls `base_url` (the sidecar's `/v1`) at `rate` per second until `stop` is set."""

    def __init__(
        self, base_url: str, *, rate: float, api_key: str, seed: int = 7, max_in_flight: int = 200
    ) -> None:
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=60.0
        )
        self.rate = rate
        self.rng = random.Random(seed)
        self.counts = Counts()
        self._slots = asyncio.Semaphore(max_in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                call = scenario.draw_call(self.rng)
                await self._slots.acquire()
                task = asyncio.create_task(self._send(call))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                try:
                    await asyncio.wait_for(stop.wait(), self.rng.expovariate(self.rate))
                except TimeoutError:
                    pass
        finally:
            if tasks:
                await asyncio.wait(tasks, timeout=30)
            await self.client.close()

    async def _send(self, call: scenario.Call) -> None:
        self.counts.sent += 1
        options: dict[str, Any] = {
            "model": PRIMARY_MODEL,
            "messages": call.messages,
            "extra_headers": {"x-demo-user": call.user, "x-demo-plan": call.plan},
        }
        if call.json_mode:
            options["response_format"] = {"type": "json_object"}
        if call.tools:
            options["tools"] = call.tools
        try:
            if call.stream:
                stream = await self.client.chat.completions.create(
                    **options, stream=True, stream_options={"include_usage": True}
                )
                model = ""
                async for chunk in stream:
                    model = chunk.model or model
            else:
                completion = await self.client.chat.completions.create(**options)
                model = completion.model
            self.counts.answered += 1
            self.counts.models[model] += 1
        except openai.APIStatusError as exc:
            self.counts.errors[str(exc.status_code)] += 1
        except openai.APIError as exc:
            self.counts.errors[type(exc).__name__] += 1
        finally:
            self._slots.release()
