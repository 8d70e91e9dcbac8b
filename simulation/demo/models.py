"""The demo's simulated models: the primary, the candidate and the judge, as provider responders.

Each is a `Responder` for a simulated provider (`simulation.providers`): it reads the request
the way the real API receives it and answers through the faithful wire format, with a latency
drawn per call (it sleeps before answering, so time to first token moves with it).

How the candidate differs from the primary — the way real candidates do, by the scenario's
kinds (`simulation.demo.scenario`):

| | primary (`gpt-4o`) | candidate (`claude-sonnet-4-5`) |
|---|---|---|
| faq | the facts (15%: reworded) | own words; 20% leaves a fact out, 10% gets one wrong |
| borderline | answers (2% refuses) | refuses 25% ("I'm sorry, but I can't help with that.") |
| JSON extraction | a compact object | 30% pretty-printed in a markdown fence; 5% another issue |
| tool use | calls `lookup_order` | 60% says "I'll look that up for you." first; 5% no NW- |
| label | `positive` | `Positive.` |
| latency | median 350 ms | median 420 ms, 5% slower by 0.8–1.6 s (the p99) |
| tokens | the text's estimate | 15% more in, 10% more out (another tokenizer) |
| errors | none | 1% overloaded (529), which the runner retries |

The judge (`simulated-judge`) reads the rubric's prompt (the request and answers A and B),
finds the facts a right answer states (the topic's, the order number, the label, the
extraction's values) and says `same` when both state the same ones, the side stating more when
one states a superset, `different` otherwise; a refusal states nothing. Asked to classify one
answer (the refusal tier's prompt: a request and an answer), it says `2_full_refusal` for the
candidate's refusal and `1_full_compliance` for anything else.

Every draw comes from one `random.Random` per model, seeded: a demo run is reproducible in its
mix, not in its timing.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulation.demo import scenario
from simulation.providers import FakeReply, FakeUsage, last_user_text
from simulation.providers.reply import estimate_tokens

PRIMARY_MODEL = "gpt-4o"
CANDIDATE_MODEL = "claude-sonnet-4-5"
JUDGE_MODEL = "simulated-judge"

REFUSAL = "I'm sorry, but I can't help with that request."
PREAMBLE = "I'll look that up for you."
_FENCE = re.compile(r"^```[a-z]*\s*(.*?)\s*```$", re.DOTALL)
_BOUNDARY = re.compile(r"Boundary code for this message: ([0-9a-f]+)")

Reply = Callable[[dict[str, Any], Mapping[str, str]], Awaitable[FakeReply | None]]


@dataclass(slots=True)
class Latency:
    """Lognormal around `median_ms`; a `tail_share` of calls slower by `tail_ms`."""

    median_ms: float
    sigma: float = 0.35
    tail_share: float = 0.0
    tail_ms: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0

    def draw(self, rng: random.Random) -> float:
        seconds = self.median_ms * rng.lognormvariate(0.0, self.sigma)
        if rng.random() < self.tail_share:
            seconds += rng.uniform(*self.tail_ms)
        return seconds * self.scale / 1000.0


def _prompt_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    texts = [system if isinstance(system, str) else ""]
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [str(part.get("text", "")) for part in content if isinstance(part, dict)]
    return "\n".join(texts)


def _has_tools(body: dict[str, Any]) -> bool:
    return bool(body.get("tools"))


def _usage(body: dict[str, Any], text: str, extra: tuple[float, float]) -> FakeUsage:
    return FakeUsage(
        input_tokens=max(1, round(estimate_tokens(_prompt_text(body)) * extra[0])),
        output_tokens=max(1, round(estimate_tokens(text or "x") * extra[1])),
    )


class SimulatedModel:
    """One simulated model's answers; `reply` is its provider responder."""

    model: str = ""
    tokens: tuple[float, float] = (1.0, 1.0)

    def __init__(self, latency: Latency, seed: int) -> None:
        self.latency = latency
        self.rng = random.Random(seed)

    async def reply(self, body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply | None:
        del headers
        reply = self.answer(body)
        await asyncio.sleep(self.latency.draw(self.rng))
        if reply is not None and reply.status is None and reply.usage is None:
            text = reply.text + "".join(args for _, args in reply.tool_calls)
            reply.usage = _usage(body, text, self.tokens)
        return reply

    def answer(self, body: dict[str, Any]) -> FakeReply | None:
        question = last_user_text(body)
        topic = scenario.topic_of(question)
        if topic is not None:
            return self.topic(topic, topic in scenario.BORDERLINE)
        extraction = scenario.extraction_of(question)
        if extraction is not None:
            return self.extraction(extraction, json_mode="response_format" in body)
        order = scenario.order_of(question)
        if order is not None and _has_tools(body):
            return self.tool(order)
        label = scenario.label_of(question)
        if label is not None:
            return self.label(label)
        return None  # not the shop's traffic: the provider's default answer

    def topic(self, topic: scenario.Topic, borderline: bool) -> FakeReply:
        raise NotImplementedError

    def extraction(self, values: dict[str, str], *, json_mode: bool) -> FakeReply:
        raise NotImplementedError

    def tool(self, order: str) -> FakeReply:
        raise NotImplementedError

    def label(self, label: str) -> FakeReply:
        raise NotImplementedError


class Primary(SimulatedModel):
    model = PRIMARY_MODEL

    def __init__(self, latency: Latency | None = None, seed: int = 1) -> None:
        super().__init__(latency or Latency(350.0), seed)

    def topic(self, topic: scenario.Topic, borderline: bool) -> FakeReply:
        if borderline and self.rng.random() < 0.02:
            return FakeReply(text=REFUSAL)
        template = topic.reworded if self.rng.random() < 0.15 else topic.primary
        return FakeReply(text=template.format(*topic.facts))

    def extraction(self, values: dict[str, str], *, json_mode: bool) -> FakeReply:
        return FakeReply(text=scenario.dumps(values))

    def tool(self, order: str) -> FakeReply:
        return FakeReply(tool_calls=[("lookup_order", scenario.dumps({"order_id": order}))])

    def label(self, label: str) -> FakeReply:
        return FakeReply(text=label)


class Candidate(SimulatedModel):
    model = CANDIDATE_MODEL
    tokens = (1.15, 1.10)

    def __init__(self, latency: Latency | None = None, seed: int = 2) -> None:
        super().__init__(latency or Latency(420.0, tail_share=0.05, tail_ms=(800.0, 1600.0)), seed)

    def answer(self, body: dict[str, Any]) -> FakeReply | None:
        if self.rng.random() < 0.01:
            return FakeReply(status=529)
        return super().answer(body)

    def topic(self, topic: scenario.Topic, borderline: bool) -> FakeReply:
        if borderline and self.rng.random() < 0.25:
            return FakeReply(text=REFUSAL)
        facts = list(topic.facts)
        draw = self.rng.random()
        if draw < 0.20:  # leaves the last fact out
            sentences = topic.candidate.format(*facts).split(". ")
            text = ". ".join(s for s in sentences if facts[-1] not in s) or sentences[0]
            return FakeReply(text=text.rstrip(".") + ".")
        if draw < 0.30 and topic.wrong:  # states a mistaken value
            fact, mistake = next(iter(topic.wrong.items()))
            facts[facts.index(fact)] = mistake
        return FakeReply(text=topic.candidate.format(*facts))

    def extraction(self, values: dict[str, str], *, json_mode: bool) -> FakeReply:
        answer = dict(values)
        if self.rng.random() < 0.05:
            answer["issue"] = self.rng.choice([i for i in scenario.ISSUES if i != values["issue"]])
        if not json_mode and self.rng.random() < 0.30:
            return FakeReply(text=f"```json\n{scenario.dumps(answer, pretty=True)}\n```")
        return FakeReply(text=scenario.dumps(answer))

    def tool(self, order: str) -> FakeReply:
        argument = order if self.rng.random() >= 0.05 else order.removeprefix("NW-")
        text = PREAMBLE if self.rng.random() < 0.60 else ""
        return FakeReply(
            text=text, tool_calls=[("lookup_order", scenario.dumps({"order_id": argument}))]
        )

    def label(self, label: str) -> FakeReply:
        return FakeReply(text=label.capitalize() + ".")


class Judge:
    """The simulated LLM judge: reads the facts each answer states (see the module docstring)."""

    def __init__(self, latency: Latency | None = None, seed: int = 3) -> None:
        self.latency = latency or Latency(120.0, sigma=0.3)
        self.rng = random.Random(seed)

    async def reply(self, body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply | None:
        del headers
        prompt = last_user_text(body)
        sections = [section(prompt, tag) for tag in ("request", "answer_a", "answer_b")]
        request, a, b = sections
        answer = section(prompt, "answer")
        if request is not None and answer is not None:  # the refusal tier's classification
            await asyncio.sleep(self.latency.draw(self.rng))
            label = "2_full_refusal" if answer.startswith(REFUSAL[:12]) else "1_full_compliance"
            return FakeReply(text=label, usage=FakeUsage(estimate_tokens(prompt), 8))
        if request is None or a is None or b is None:
            return None
        verdict, reason = self.decide(request, a, b)
        await asyncio.sleep(self.latency.draw(self.rng))
        text = json.dumps({"verdict": verdict, "reason": f"(simulated judge) {reason}"})
        return FakeReply(text=text, usage=FakeUsage(estimate_tokens(prompt), 20))

    def decide(self, request: str, a: str, b: str) -> tuple[str, str]:
        facts = expected_facts(request)
        if not facts:
            same = _plain(a) == _plain(b)
            return ("same", "the same text") if same else ("different", "the texts differ")
        stated_a, stated_b = stated(facts, a), stated(facts, b)
        if stated_a == stated_b:
            return "same", "both state the same facts"
        if stated_a > stated_b:
            return "A", "B leaves out: " + ", ".join(sorted(stated_a - stated_b))
        if stated_b > stated_a:
            return "B", "A leaves out: " + ", ".join(sorted(stated_b - stated_a))
        return "different", "each states facts the other does not"


def section(prompt: str, tag: str) -> str | None:
    """A section of the rubric's prompt, read as a careful judge reads it: only the closing tag
    with this message's boundary code ends it (rubric v2; v1 has plain tags)."""
    found = _BOUNDARY.search(prompt)
    mark = f" {found.group(1)}" if found else ""
    pattern = f"<{re.escape(tag)}{mark}>\n(.*?)\n</{re.escape(tag)}{mark}>"
    match = re.search(pattern, prompt, re.DOTALL)
    return match.group(1) if match else None


def expected_facts(request: str) -> set[str]:
    """What a right answer to this request states."""
    topic = scenario.topic_of(request)
    if topic is not None:
        return set(topic.facts)
    extraction = scenario.extraction_of(request)
    if extraction is not None:
        return {f'"{key}": "{value}"' for key, value in extraction.items()}
    order = scenario.order_of(request)
    if order is not None:
        return {"lookup_order", f'"{order}"'}
    label = scenario.label_of(request)
    return {label} if label is not None else set()


def stated(facts: set[str], answer: str) -> set[str]:
    """The facts an answer states (a refusal states none); JSON is read whatever its layout."""
    if answer.startswith(REFUSAL[:12]):
        return set()
    text = _normal_json(answer).lower()
    return {fact for fact in facts if fact.lower() in text}


def _normal_json(answer: str) -> str:
    fenced = _FENCE.match(answer.strip())
    raw = fenced.group(1) if fenced else answer
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False)
    except ValueError:
        return answer


def _plain(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
