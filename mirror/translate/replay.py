"""The runner's translation: a replay translated approximately where it cannot be faithfully,
the changes recorded, and an answer given through the forced JSON tool read back as text.

A replay only compares answers, so a near-faithful request is worth more than none: a skipped
arm is a pair the judge and the triggers never see. `translate_replay` takes what
`mirror.translate.request`'s table translates approximately (`json_object` as a forced tool,
a non-strict `json_schema` made strict, sampling parameters the target does not take left out,
`top_k` left out towards Chat Completions) and returns the notes, which the runner puts on the
candidate's `ArmResult.approximations`, so the pair says it and the pages can leave such pairs
out. The live path never approximates: a call the candidate serves to the app is translated by
`translate_served_request`, faithfully or not at all.

An Anthropic arm answers a `json_object` request through the forced tool `JSON_TOOL`: its input
is the JSON object the app asked for. `replay_answer` turns that call back into the answer's
text (compact JSON, as the tool input was generated), with the finish reason of an answer that
ended (`end_turn`; a cut one keeps `max_tokens`), whether the answer was streamed or not, so the
judge compares a JSON text with a JSON text as for any JSON-mode pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirror.answers.bodies import make_output
from mirror.events import Api, ArmResult
from mirror.translate.params import APPROX_JSON_OBJECT, JSON_TOOL, SamplingPolicy
from mirror.translate.request import DEFAULT_MAX_TOKENS, translate_request

__all__ = ["JSON_TOOL", "Replay", "replay_answer", "translate_replay"]


@dataclass(frozen=True, slots=True)
class Replay:
    """A request translated for a replayed arm, and what the translation changed."""

    body: dict[str, Any]
    #: One note per approximation, in the order made; empty when faithful.
    approximations: tuple[str, ...] = ()

    @property
    def json_tool(self) -> bool:
        """The arm answers through the forced JSON tool (`replay_answer` reads it back)."""
        return APPROX_JSON_OBJECT in self.approximations


def translate_replay(
    body: dict[str, Any],
    *,
    source: Api,
    target: Api,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    sampling: SamplingPolicy = "approximate",
    mid_conversation_system: bool = False,
) -> Replay:
    """`translate_request` allowed to approximate; raises `Untranslatable` for the rest."""
    notes: list[str] = []
    out = translate_request(
        body,
        source=source,
        target=target,
        model=model,
        default_max_tokens=default_max_tokens,
        sampling=sampling,
        mid_conversation_system=mid_conversation_system,
        notes=notes,
    )
    return Replay(out, tuple(dict.fromkeys(notes)))


def replay_answer(result: ArmResult, replay: Replay) -> ArmResult:
    """`result` with its approximations, and the forced JSON tool's call read back as text."""
    if replay.approximations:
        result = result.model_copy(update={"approximations": replay.approximations})
    output = result.output
    if not replay.json_tool or output is None:
        return result
    calls = [call for call in output.tool_calls if call.name == JSON_TOOL]
    if len(calls) != 1 or len(output.tool_calls) != 1:
        return result  # not the forced call alone (an error, a cut answer): left as given
    raw = output.raw_finish_reason
    answer = make_output(
        calls[0].arguments,
        raw_finish="end_turn" if raw == "tool_use" else raw,
        refusal=output.refusal,
    )
    return result.model_copy(update={"output": answer})
