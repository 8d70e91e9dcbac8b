"""What each not-judged or error cause means, and the fix, in the words of the config file.

A cause is `judge.store.schema.reason_cause` of a verdict reason; the example reason (one full
reason per cause, read from the raw rows) fills in the detail a fix needs, such as the
environment variable that is unset.
"""

from __future__ import annotations

import re

_KEY_VARIABLE = re.compile(r"environment variable (\w+) is not set")

#: (cause prefix, fix). The first prefix that matches wins.
FIXES: tuple[tuple[str, str], ...] = (
    ("no LLM judge configured", "set judge.provider and judge.model"),
    ("request not captured", "raise capture.max_body_bytes, or check capture.redact"),
    ("embeddings are not judged", "embeddings are compared by their own figures, not judged"),
    ("candidate skipped: no API key", "{variable} unset: export it where the runner runs"),
    ("candidate skipped: untranslatable", "cannot translate the request: {detail}"),
    ("candidate skipped: daily spend cap reached", "raise migrations[].daily_spend_usd"),
    ("candidate skipped: no price for", "add the model under prices"),
    ("candidate skipped: provider", "add the provider under providers"),
    ("candidate skipped: the request was not captured whole", "raise capture.max_body_bytes"),
    (
        "candidate skipped: the primary rejected it",
        "none needed: calls the primary refused are not shadowed",
    ),
    ("candidate skipped: request body is not JSON", "none: the app's request is not JSON"),
    ("candidate failed", "the candidate answered with errors: see its error kinds"),
    ("candidate has no answer", "the candidate answered without a body: see its error kinds"),
    ("primary failed", "none needed: the app's own call failed, nothing to compare"),
    ("primary has no answer", "none needed: the app's own call had no answer"),
    ("candidate answer truncated to fit", "raise bus.max_message_bytes (and the broker's limit)"),
    ("primary answer truncated to fit", "raise bus.max_message_bytes (and the broker's limit)"),
    ("candidate answer truncated", "raise capture.max_body_bytes"),
    ("primary answer truncated", "raise capture.max_body_bytes"),
    ("judge timed out", "raise judge.timeout_s, or lower the judge's concurrency"),
    ("judge answered HTTP 401", "the judge's key is refused: check its api_key_env"),
    ("judge answered HTTP 429", "the judge is rate-limited: lower its concurrency"),
    ("judge unreachable", "check the judge provider's base_url and the network"),
    ("judge answer", "the judge model does not follow the rubric: try a stronger judge.model"),
    ("judge refused", "the judge model refused: try another judge.model"),
)


def fix_for(cause: str, example: str = "") -> str:
    """The fix for a cause, with the example's detail filled in; '' when none is known."""
    for prefix, fix in FIXES:
        if cause.startswith(prefix) or example.startswith(prefix):
            variable = _KEY_VARIABLE.search(example)
            detail = example.split(": ", 2)[-1] if example.count(": ") >= 2 else example
            return fix.format(
                variable=variable[1] if variable else "the provider's key variable",
                detail=detail[:160],
            )
    return ""
