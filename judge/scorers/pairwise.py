"""The pairwise LLM judge: one question, two answers, one verdict per order of presentation.

`PairwiseJudge` talks to the judge model through the official SDK of the configured provider's
kind (`openai.AsyncOpenAI` chat completions or `anthropic.AsyncAnthropic` messages). Its requests
carry `x-shadowjudge-shadow: judge`, so a sidecar or in-process mirror in the path never
captures judge traffic as if it were the app's. Every failure — HTTP errors after the SDK's own
retries, timeouts, connection errors, an answer that is not the JSON the rubric asks for — is a
`JudgeCallError` whose message is the reason shown beside the `error` verdict; the caller never
sees an SDK exception.

`ask_both` asks both orders concurrently (primary as A, then the candidate as A);
`judge.scorers.equivalence.combine_orders` turns the two answers into one verdict.

The question shown to the judge is the captured request's system prompt and last user message
(`extract_question`, for OpenAI chat and Responses and Anthropic messages); tool calls are
rendered as text. Long texts are cut (`MAX_PROMPT_CHARS` each) to bound the judge's cost.

The SDK is imported and its client made at the first question, in a worker thread: importing
`anthropic` takes ~1.5 s and ~75 MB (`openai` ~0.7 s, ~50 MB), which a process that asks the
judge nothing yet should not pay at start, and which must not stall the event loop that, in
`run`, also carries the sidecar's live path.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx2

from judge.config import JudgeSettings
from judge.errors import JudgeError
from judge.scorers.rubrics import RUBRICS, Rubric
from mirror.config import ProviderSettings
from mirror.errors import ConfigError
from mirror.events import SHADOW_TRAFFIC_HEADER, Api, Output, ProviderKind

if TYPE_CHECKING:
    import anthropic
    import openai

#: Each of the question, the system prompt and the two answers is cut to this many characters.
MAX_PROMPT_CHARS = 16_000
#: Anthropic requires a cap; the rubric asks for one short JSON object.
MAX_ANSWER_TOKENS = 1024

OrderLabel = Literal["A", "B", "same", "different"]
_LABELS: dict[str, OrderLabel] = {
    "a": "A",
    "b": "B",
    "answer a": "A",
    "answer b": "B",
    "same": "same",
    "equivalent": "same",
    "different": "different",
}


class JudgeCallError(JudgeError):
    """The LLM judge gave no usable verdict (the SDK's retries included); the message is the
    reason recorded beside the `error` verdict."""


@dataclass(frozen=True, slots=True)
class Question:
    system: str
    user: str


@dataclass(frozen=True, slots=True)
class OrderVerdict:
    """The judge's answer for one order of presentation."""

    label: OrderLabel
    reason: str


# --- the question and the answers, as the judge reads them -------------------------------


#: Bound once: an enum member read from its class costs ~0.1 µs on Python 3.11.
_ANTHROPIC_MESSAGES, _OPENAI_RESPONSES = Api.ANTHROPIC_MESSAGES, Api.OPENAI_RESPONSES


def extract_question(api: Api, request: Mapping[str, Any] | None) -> Question | None:
    """System prompt and last user message of a captured request; None without a request."""
    if request is None:
        return None
    if api is _ANTHROPIC_MESSAGES:
        system = _text(request.get("system"))
        user = _last_user(request.get("messages"))
    elif api is _OPENAI_RESPONSES:
        items = request.get("input")
        instructions = request.get("instructions")
        parts = [instructions] if isinstance(instructions, str) else []
        system = "\n".join([*parts, *_system_texts(items)])
        user = items if isinstance(items, str) else _last_user(items)
    else:
        messages = request.get("messages")
        system, user = "\n".join(_system_texts(messages)), _last_user(messages)
    return Question(_cap(system), _cap(user))


def extract_user(api: Api, request: Mapping[str, Any] | None) -> str | None:
    """`extract_question(api, request).user`, None without a request: the scorer reads only
    the user's message for every pair (the refusal rules), so the system prompt is not
    gathered and no `Question` is made (~0.4 against ~2.7 µs)."""
    if request is None:
        return None
    if api is _OPENAI_RESPONSES:
        items = request.get("input")
        user = items if isinstance(items, str) else _last_user(items)
    else:
        user = _last_user(request.get("messages"))
    return _cap(user)


def render_answer(output: Output) -> str:
    """An answer as text for the judge: its text, an explicit refusal, then its tool calls."""
    parts = [output.text] if output.text else []
    if output.refusal and output.refusal not in output.text:
        parts.append(f"[refusal] {output.refusal}")
    parts += [f"[tool call] {call.name}({call.arguments or '{}'})" for call in output.tool_calls]
    return _cap("\n".join(parts)) or "(empty answer)"


def _cap(text: str) -> str:
    return text if len(text) <= MAX_PROMPT_CHARS else text[:MAX_PROMPT_CHARS] + " […cut]"


def _text(content: Any) -> str:
    """Text of a message content: a string, or a list of typed parts (text of any dialect)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            kind = str(part.get("type", ""))
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif "image" in kind:
                parts.append("[image]")
            elif kind in ("file", "input_file", "document"):
                parts.append("[file]")
    return "\n".join(parts)


def _is_tool_result(content: Any) -> bool:
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(p, dict) and p.get("type") == "tool_result" for p in content)
    )


def _last_user(messages: Any) -> str:
    """The last user turn with words in it (Anthropic tool results are not the user's)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):  # the usual case, as `_text` would answer it
                return content
            if not _is_tool_result(content):
                return _text(content)
    return ""


def _system_texts(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return []
    return [
        _text(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    ]


def build_prompt(
    rubric: Rubric,
    question: Question,
    answer_a: str,
    answer_b: str,
    boundary: str | None = None,
) -> str:
    """The rubric's template filled in. A template with `{boundary}` gets a random one (or the
    one given), never found in any of the texts it encloses: a text cannot close its section."""
    texts = (question.system, question.user, answer_a, answer_b)
    if "{boundary}" in rubric.template:
        while boundary is None or any(boundary in text for text in texts):
            boundary = secrets.token_hex(8)
    return rubric.template.format(
        system=question.system or "(none)",
        question=question.user or "(empty)",
        answer_a=answer_a,
        answer_b=answer_b,
        boundary=boundary or "",
    )


def parse_judge_answer(text: str) -> OrderVerdict:
    """The verdict from the judge's own reply: the last JSON object in it with a `verdict` (bare,
    in a fence or amid prose). The last, so that a judge quoting an answer's forged verdict
    before giving its own is read for its own; `JudgeCallError` when there is none."""
    stripped = text.strip()
    data = _last_verdict_object(stripped)
    if data is None:
        raise JudgeCallError(f"judge answer is not the rubric's JSON object: {stripped[:200]!r}")
    raw = data.get("verdict")
    label = _LABELS.get(raw.strip().lower()) if isinstance(raw, str) else None
    if label is None:
        raise JudgeCallError(f"judge answer has no valid verdict: {raw!r}")
    reason = data.get("reason")
    return OrderVerdict(label, reason.strip() if isinstance(reason, str) else "")


def _last_verdict_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict) and "verdict" in value:
            found = value
        start = text.find("{", end)
    return found


# --- the client --------------------------------------------------------------------------


class PairwiseJudge:
    """An LLM judge through the official SDK of one provider; an async context manager.

    `max_retries` and `timeout_s` go to the SDK (its retries back off and honour
    `retry-after`); `max_concurrency` bounds the requests in flight across all pairs.
    """

    def __init__(
        self,
        *,
        provider_name: str,
        provider: ProviderSettings,
        model: str,
        rubric_version: str = "v1",
        timeout_s: float = 60.0,
        max_concurrency: int = 16,
        max_retries: int = 2,
    ) -> None:
        if rubric_version not in RUBRICS:
            raise ConfigError(f"judge.rubric_version: unknown rubric {rubric_version!r}")
        key = provider.api_key()
        if provider.api_key_env and key is None:
            raise ConfigError(
                f"judge.provider: environment variable {provider.api_key_env!r} "
                f"(providers.{provider_name}.api_key_env) is not set"
            )
        self.provider_name = provider_name
        self.kind = provider.kind
        self.model = model
        self.rubric_version = rubric_version
        self.rubric = RUBRICS[rubric_version]
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrency)
        self._base_url = provider.base_url
        self._options: dict[str, Any] = {
            # A key-less local endpoint still needs a non-empty key for the SDKs to send a
            # request; passing one explicitly also keeps them from reading credentials of their
            # own.
            "api_key": key or "unused",
            "timeout": timeout_s,
            "max_retries": max_retries,
            "default_headers": {SHADOW_TRAFFIC_HEADER: "judge"},
        }
        self._connecting = asyncio.Lock()
        self._openai: openai.AsyncOpenAI | None = None
        self._anthropic: anthropic.AsyncAnthropic | None = None
        #: What a question may raise: the SDK's errors (known once it is imported) and httpx's.
        self._caught: tuple[type[Exception], ...] = (httpx2.HTTPError,)
        #: The SDK's timeout, HTTP status and connection errors, for the reason shown.
        self._kinds: tuple[type[Exception], ...] = ()

    @classmethod
    def from_settings(
        cls, settings: JudgeSettings, providers: Mapping[str, ProviderSettings]
    ) -> PairwiseJudge | None:
        """The configured judge, or None when `judge.provider` is unset (LLM tier off)."""
        if settings.provider is None:
            return None
        provider = providers.get(settings.provider)
        if provider is None:
            raise ConfigError(f"judge.provider: no provider named {settings.provider!r}")
        return cls(
            provider_name=settings.provider,
            provider=provider,
            model=settings.model,
            rubric_version=settings.rubric_version,
            timeout_s=settings.timeout_s,
            max_concurrency=settings.max_concurrency,
            max_retries=settings.max_retries,
        )

    @property
    def identity(self) -> str:
        """Provider and model: part of the judge version."""
        return f"{self.provider_name}/{self.model}"

    async def ask_both(
        self, question: Question, primary: str, candidate: str
    ) -> tuple[OrderVerdict, OrderVerdict]:
        """(primary shown as A, candidate shown as A), asked at once; raises `JudgeCallError`."""
        results = await asyncio.gather(
            self.ask(question, primary, candidate),
            self.ask(question, candidate, primary),
            return_exceptions=True,
        )
        first, second = results
        for result in results:
            if isinstance(result, BaseException):
                raise result
        assert isinstance(first, OrderVerdict) and isinstance(second, OrderVerdict)
        return first, second

    async def ask(self, question: Question, answer_a: str, answer_b: str) -> OrderVerdict:
        """One order of presentation; raises `JudgeCallError`."""
        prompt = build_prompt(self.rubric, question, answer_a, answer_b)
        return parse_judge_answer(await self.complete(self.rubric.system, prompt))

    async def complete(self, system: str, prompt: str) -> str:
        """The judge model's reply to one prompt under `system`, through the same client, slots,
        timeout and retries as the pairwise questions (the refusal tier asks its own prompt this
        way); raises `JudgeCallError`."""
        if self._openai is None and self._anthropic is None:
            await self._connect()
        try:
            async with self._slots:
                return await self._complete(system, prompt)
        except self._caught as exc:
            raise JudgeCallError(self._describe(exc)) from exc

    async def _connect(self) -> None:
        async with self._connecting:
            if self._openai is None and self._anthropic is None:
                await asyncio.to_thread(self._make_client)

    def _make_client(self) -> None:
        if self.kind is ProviderKind.OPENAI:
            import openai

            self._caught = (openai.OpenAIError, httpx2.HTTPError)
            self._kinds = (openai.APITimeoutError, openai.APIStatusError, openai.APIConnectionError)
            self._openai = openai.AsyncOpenAI(base_url=f"{self._base_url}/v1", **self._options)
        else:
            import anthropic

            self._caught = (anthropic.AnthropicError, httpx2.HTTPError)
            self._kinds = (
                anthropic.APITimeoutError,
                anthropic.APIStatusError,
                anthropic.APIConnectionError,
            )
            self._anthropic = anthropic.AsyncAnthropic(base_url=self._base_url, **self._options)

    async def _complete(self, system: str, prompt: str) -> str:
        if self._openai is not None:
            completion = await self._openai.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ],
            )
            if not completion.choices:
                raise JudgeCallError("judge answered with no choices")
            message = completion.choices[0].message
            if message.refusal:
                raise JudgeCallError(f"judge refused: {message.refusal[:200]}")
            return message.content or ""
        assert self._anthropic is not None
        from anthropic.types import TextBlock  # imported already, by `_make_client`

        reply = await self._anthropic.messages.create(
            model=self.model,
            max_tokens=MAX_ANSWER_TOKENS,
            system=system,
            messages=[{"role": "user", "content": prompt}],
        )
        return "".join(b.text for b in reply.content if isinstance(b, TextBlock))

    def _describe(self, exc: Exception) -> str:
        timeout, status, connection = self._kinds or (JudgeCallError,) * 3
        if isinstance(exc, timeout):
            return f"judge timed out after {self.timeout_s:g} s"
        if isinstance(exc, status):
            code, message = getattr(exc, "status_code", "?"), getattr(exc, "message", exc)
            return f"judge answered HTTP {code}: {str(message)[:200]}"
        if isinstance(exc, connection):
            return f"judge unreachable: {exc}"
        return f"judge call failed: {type(exc).__name__}: {str(exc)[:200]}"

    async def aclose(self) -> None:
        if self._openai is not None:
            await self._openai.close()
        if self._anthropic is not None:
            await self._anthropic.close()

    async def __aenter__(self) -> PairwiseJudge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
