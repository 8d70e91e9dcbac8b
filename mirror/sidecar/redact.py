"""Redaction applied to every string of an event before it leaves the sidecar process.

Two kinds: the configured regex rules (emails, card numbers, whatever the team names), and
literal secrets — the credential the app sent with this very call and the values of configured
secret environment variables — replaced wherever they appear in a body, so a key pasted into a
prompt or echoed by a model is not published. Only string values are rewritten, never keys or
structure, so a redacted JSON body is still the same JSON shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from mirror.config import RedactionRule

#: Shorter literals are not treated as secrets: redacting "abc" everywhere would shred text.
MIN_SECRET_LENGTH = 8
SECRET_REPLACEMENT = "[REDACTED:credential]"


class Redactor:
    """Rewrites strings by the configured rules and literal secrets."""

    def __init__(self, rules: Sequence[RedactionRule] = (), secret_envs: Iterable[str] = ()):
        self._rules = [(re.compile(r.pattern), r.replacement_text) for r in rules]
        self._static_secrets = tuple(
            value
            for name in secret_envs
            if (value := os.environ.get(name)) and len(value) >= MIN_SECRET_LENGTH
        )

    def for_call(self, secrets: Iterable[str]) -> CallRedactor:
        """A redactor for one call, adding the credentials that call carried."""
        extra = tuple(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        return CallRedactor(self._rules, self._static_secrets + extra)


class CallRedactor:
    __slots__ = ("_rules", "_secrets")

    def __init__(self, rules: list[tuple[re.Pattern[str], str]], secrets: tuple[str, ...]):
        self._rules = rules
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    @property
    def active(self) -> bool:
        return bool(self._rules or self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, SECRET_REPLACEMENT)
        for pattern, replacement in self._rules:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (dicts, lists, strings)."""
        if not self.active:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value
