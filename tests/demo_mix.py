"""The demo traffic mix: shadow pairs as a migrating support assistant produces them.

A feature on `gpt-4o` shadowed to `claude-sonnet-4-6`, with the noise arm on. The mix, by share
of pairs (each a seeded random draw, so a run is reproducible):

- 35% structured extraction (JSON mode): 80% the same object (another key order, spacing,
  or in a markdown fence), 20% a value differs;
- 20% tool calling: 85% the same call and arguments, 15% other arguments; the candidate says
  "I'll look that up for you." before 60% of its calls, as Claude models do;
- 10% short labels (intent, sentiment): the same label up to case and punctuation;
- 25% free-text answers: two real models' answers to the same XSTest prompt (GPT-4, Llama-2);
- 5% candidate errors: 529 overloaded after retries;
- 5% noise arm (the primary asked again): half word for word, half reworded (GPT-4, Mistral).

The requests carry the parameters such apps set, drawn from a generator of their own (seeded by
the pair's index) so they change no answer above: extraction asks for `json_object` (60%), a
strict `json_schema` (25%) or a non-strict one (15%); labels are asked at `temperature` 0 (70%);
free text at `temperature` 0.7 (30%), or with both `temperature` and `top_p` (20%); tool calls at
`temperature` 0.2 (30%). The cross-provider replay of these requests (Chat Completions to
Anthropic Messages) is what `tests.benchmarks.translation_coverage` measures.

The share a judge decides without an LLM call follows from the mix; what the mix shows is that
the cascade reaches the LLM only for what the cheap tiers cannot decide.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from mirror.answers.bodies import make_output
from mirror.events import (
    Api,
    Arm,
    ArmKind,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    Output,
    ShadowPair,
    ToolCall,
    Usage,
)

XSTEST = Path(__file__).resolve().parent / "data" / "xstest"
MIGRATION = "support-to-claude"


@cache
def _answers(model: str) -> dict[str, tuple[str, str]]:
    with (XSTEST / f"xstest_v2_completions_{model}.csv").open(newline="") as handle:
        return {row["id"]: (row["prompt"], row["completion"]) for row in csv.DictReader(handle)}


def _side(
    provider: str, model: str, output: Output, latency: float, rng: random.Random
) -> ArmResult:
    return ArmResult(
        provider=provider,
        model=model,
        status_code=200,
        latency_ms=latency,
        ttft_ms=latency * rng.uniform(0.2, 0.5),
        stream=True,
        output=output,
        usage=Usage(input_tokens=rng.randint(200, 1500), output_tokens=rng.randint(20, 400)),
    )


def _pair(
    rng: random.Random,
    request: dict,
    primary: Output,
    candidate: Output | None,
    *,
    arm: str = "claude",
    error: bool = False,
) -> ShadowPair:
    call = CapturedCall(
        api=Api.OPENAI_CHAT,
        segment={
            "route": rng.choice(["/chat", "/extract", "/triage"]),
            "tenant": rng.choice(["acme", "globex", "initech"]),
        },
        request=request,
        primary=_side("openai", "gpt-4o", primary, rng.uniform(300, 2500), rng),
    )
    if error:
        result = ArmResult(
            provider="anthropic",
            model="claude-sonnet-4-6",
            status_code=529,
            latency_ms=rng.uniform(50, 400),
            error=ErrorInfo(kind=ErrorKind.HTTP, message="Overloaded", type="overloaded_error"),
        )
    elif arm == "noise":
        assert candidate is not None
        result = _side("openai", "gpt-4o", candidate, rng.uniform(300, 2500), rng)
    else:
        assert candidate is not None
        result = _side("anthropic", "claude-sonnet-4-6", candidate, rng.uniform(250, 2000), rng)
    kind = ArmKind.NOISE if arm == "noise" else ArmKind.CANDIDATE
    return ShadowPair(call=call, migration=MIGRATION, arm=Arm(name=arm, kind=kind), result=result)


def _chat(question: str, **extra: object) -> dict:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are the support assistant of Acme Cloud."},
            {"role": "user", "content": question},
        ],
        **extra,
    }


def _params(i: int) -> random.Random:
    """The generator of pair `i`'s request parameters: its own, so the answers' draws from the
    mix's generator stay what they were before the requests carried parameters."""
    return random.Random(f"params-{i}")


TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "customer": {"type": "string"},
        "intent": {"type": "string", "enum": ["refund", "upgrade", "bug"]},
        "priority": {"type": "integer"},
        "products": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["customer", "intent", "priority", "products"],
}


def _extraction_format(i: int) -> dict[str, object]:
    draw = _params(i).random()
    if draw < 0.6:
        return {"type": "json_object"}
    if draw < 0.85:
        schema = {**TICKET_SCHEMA, "additionalProperties": False}
        spec = {"name": "ticket", "schema": schema, "strict": True}
    else:
        spec = {"name": "ticket", "schema": TICKET_SCHEMA}
    return {"type": "json_schema", "json_schema": spec}


def _sampling(i: int, shares: tuple[tuple[float, dict[str, float]], ...]) -> dict[str, float]:
    draw, edge = _params(i).random(), 0.0
    for share, params in shares:
        edge += share
        if draw < edge:
            return params
    return {}


def _extraction(rng: random.Random, i: int, vary: bool = True) -> ShadowPair:
    record = {
        "customer": f"cust-{i % 977}",
        "intent": rng.choice(["refund", "upgrade", "bug"]),
        "priority": rng.randint(1, 4),
        "products": rng.sample(["db", "cdn", "vm", "dns"], 2),
    }
    primary = json.dumps(record)
    same = dict(reversed(list(record.items())))
    if vary and rng.random() < 0.2:
        same["priority"] = record["priority"] % 4 + 1
    text = json.dumps(same, indent=rng.choice([None, 2]))
    if rng.random() < 0.3:
        text = f"```json\n{text}\n```"
    request = _chat(
        f"Extract the ticket fields from ticket #{i}.", response_format=_extraction_format(i)
    )
    return _pair(
        rng,
        request,
        make_output(primary, raw_finish="stop"),
        make_output(text, raw_finish="end_turn"),
    )


def _tools(rng: random.Random, i: int, vary: bool = True) -> ShadowPair:
    city = rng.choice(["Oslo", "Lima", "Pune", "Perth"])
    args = {"city": city, "unit": "celsius"}
    other = dict(args)
    if vary and rng.random() < 0.15:
        other["city"] = f"{city}, {rng.choice(['NO', 'PE', 'IN', 'AU'])}"
    request = _chat(
        f"What's the weather in {city}? (#{i})",
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
        **_sampling(i, ((0.3, {"temperature": 0.2}),)),
    )

    def call(arguments: dict, raw: str, text: str = "") -> Output:
        return make_output(
            text, [ToolCall(id=f"t{i}", name="get_weather", arguments=json.dumps(arguments))], raw
        )

    preamble = "I'll look that up for you." if rng.random() < 0.6 else ""
    return _pair(rng, request, call(args, "tool_calls"), call(other, "tool_use", preamble))


def _labels(rng: random.Random, i: int) -> ShadowPair:
    label = rng.choice(["positive", "negative", "neutral"])
    candidate = rng.choice([label, label.capitalize(), f"{label.capitalize()}."])
    return _pair(
        rng,
        _chat(f"Sentiment of review #{i}? One word.", **_sampling(i, ((0.7, {"temperature": 0}),))),
        make_output(label, raw_finish="stop"),
        make_output(candidate, raw_finish="end_turn"),
    )


def _free_text(
    rng: random.Random, i: int, arm: str = "claude", other: str = "llama2new"
) -> ShadowPair:
    key = rng.choice(sorted(_answers("gpt4")))
    prompt, primary = _answers("gpt4")[key]
    candidate = _answers(other)[key][1]
    sampling = ((0.3, {"temperature": 0.7}), (0.2, {"temperature": 0.8, "top_p": 0.9}))
    return _pair(
        rng,
        _chat(prompt, **(_sampling(i, sampling) if arm != "noise" else {})),
        make_output(primary, raw_finish="stop"),
        make_output(candidate, raw_finish="end_turn"),
        arm=arm,
    )


def _noise(rng: random.Random, i: int) -> ShadowPair:
    if rng.random() < 0.5:
        key = rng.choice(sorted(_answers("gpt4")))
        prompt, answer = _answers("gpt4")[key]
        return _pair(
            rng,
            _chat(prompt),
            make_output(answer, raw_finish="stop"),
            make_output(answer, raw_finish="stop"),
            arm="noise",
        )
    return _free_text(rng, i, arm="noise", other="mistralguard")


def _error(rng: random.Random, i: int) -> ShadowPair:
    return _pair(
        rng,
        _chat(f"Help with ticket {i}"),
        make_output("Sure.", raw_finish="stop"),
        None,
        error=True,
    )


MIX = (
    (0.35, _extraction),
    (0.20, _tools),
    (0.10, _labels),
    (0.25, _free_text),
    (0.05, _error),
    (0.05, _noise),
)


def demo_pairs(n: int, seed: int = 7) -> Iterator[ShadowPair]:
    rng = random.Random(seed)
    weights = [w for w, _ in MIX]
    makers = [m for _, m in MIX]
    for i in range(n):
        yield rng.choices(makers, weights)[0](rng, i)


def deterministic_pairs(n: int, seed: int = 11) -> Iterator[ShadowPair]:
    """Structured traffic the exact and JSON tiers decide: the same object reformatted or
    fenced, the same tool call, the same label up to case — no LLM call."""
    rng = random.Random(seed)
    for i in range(n):
        choice = rng.random()
        if choice < 0.5:
            yield _extraction(rng, i, vary=False)
        elif choice < 0.8:
            yield _tools(rng, i, vary=False)
        else:
            yield _labels(rng, i)
