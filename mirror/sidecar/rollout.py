"""Staged rollout on the live path, the decision: which arm, if any, serves this call.

A call can be served by a candidate when it is a POST to Chat Completions or Anthropic
Messages whose JSON body matches an enabled migration that declares `rollout:` (the runner's
match rules: API, model globs, segment labels, read here from the request as it arrives), and
that migration's weight is above 0: the latest `WeightChange` in `Weights`, else the
configured `rollout.weight`. The first such migration, in settings order, decides:
`Weights.serves(migration, sticky key)`, a hash of the key compared with the weight, so one
caller stays on one side while the weight stands and every sidecar decides alike.

The sticky key is read from the request: `segment.<label>` (the label as capture computes it:
`x-shadow-<label>` headers, `capture.segment_headers`, `capture.segment_body`),
`header:<name>`, or `body:<dotted.path>` (a string or a number). A call without it (the
header absent, the label or field empty) is decided on its own, by a random key: it is not
lumped with every other keyless call into one all-or-nothing bucket, and not left out.
Labels are matched before redaction (capture redacts them for the event); a redaction rule
that rewrites a label value can make the two disagree.

Cost when nothing is rolled out: `live` compares `Weights.version` with the one last seen
(an attribute read) and finds the live list empty; the body is parsed only when some
migration serves a weight above 0, and only for the two served APIs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mirror.config import CaptureSettings, ProviderSettings
from mirror.events import Api
from mirror.migrations import ArmSettings, MigrationSettings, RolloutSettings
from mirror.rollout import Weights, sticky_point
from mirror.sidecar.capture import scalar_at, segment_labels

log = logging.getLogger(__name__)

#: The APIs a candidate can serve: the ones the answer translation covers.
SERVED_APIS = frozenset({Api.OPENAI_CHAT, Api.ANTHROPIC_MESSAGES})


@dataclass(frozen=True, slots=True)
class Choice:
    """A call chosen for a candidate arm: what the served path needs to make its request."""

    migration: str
    arm: ArmSettings
    provider_name: str
    provider: ProviderSettings
    #: The app's request body, parsed.
    body: dict[str, Any]
    #: The app's request headers, names lower-cased.
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Live:
    migration: MigrationSettings
    rollout: RolloutSettings
    #: The configured start, used while no change is recorded for the migration.
    start_arm: str
    start_weight: float


class RolloutRouter:
    """Decides, per call, whether a candidate serves it (see the module docs)."""

    def __init__(
        self,
        migrations: Sequence[MigrationSettings],
        providers: Mapping[str, ProviderSettings],
        capture: CaptureSettings,
        weights: Weights,
    ) -> None:
        self.weights = weights
        self._providers = dict(providers)
        self._rollouts = [m for m in migrations if m.enabled and m.rollout is not None]
        self._label_headers = {header: label for label, header in capture.segment_headers.items()}
        self._segment_body = dict(capture.segment_body)
        self._seen = -1
        self._live: list[_Live] = []
        self._warned: set[tuple[str, str]] = set()

    @property
    def migrations(self) -> list[MigrationSettings]:
        """The migrations that declare a rollout."""
        return list(self._rollouts)

    @property
    def live(self) -> bool:
        """Whether some migration serves a weight above 0 now (cheap: the live path asks it
        of every call)."""
        if self.weights.version != self._seen:
            self._refresh()
        return bool(self._live)

    def _refresh(self) -> None:
        seen = self.weights.version  # read first: a change landing meanwhile refreshes again
        live: list[_Live] = []
        for migration in self._rollouts:
            rollout = migration.rollout
            assert rollout is not None and rollout.arm is not None  # settings fill it in
            change = self.weights.current(migration.name)
            weight = rollout.weight if change is None else change.weight
            if weight > 0.0:
                live.append(_Live(migration, rollout, rollout.arm, rollout.weight))
        self._live = live
        self._seen = seen

    def choose(self, api: Api, headers: Mapping[str, str], body: bytes) -> Choice | None:
        """The candidate that serves this call, or None (the primary serves it).

        `headers` are the app's, names lower-cased. Call only when `live`.
        """
        if api not in SERVED_APIS:
            return None
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict):
            return None
        model = request.get("model")
        segment: dict[str, str] | None = None  # computed when a rule needs it
        for live in self._live:
            match, sticky = live.migration.match, live.rollout.sticky_source
            if segment is None and (match.segment or (sticky and sticky[0] == "segment")):
                segment = self._segment(headers, request)
            if not match.matches_parts(api, model, segment or {}):
                continue
            # The first live migration that matches decides, served or not.
            key = self._key(live.rollout, headers, request, segment or {})
            return self._decide(live, key, request, headers)
        return None

    def _decide(
        self, live: _Live, key: str, request: dict[str, Any], headers: Mapping[str, str]
    ) -> Choice | None:
        name = live.migration.name
        if self.weights.current(name) is None:
            weight = live.start_weight
            served = weight >= 1.0 or (weight > 0.0 and sticky_point(name, key) < weight)
            arm_name: str | None = live.start_arm if served else None
        else:
            arm_name = self.weights.serves(name, key)
        if arm_name is None:
            return None
        arm = live.migration.arm(arm_name)
        provider = self._providers.get(arm.provider) if arm is not None else None
        if arm is None or provider is None:
            if (name, arm_name) not in self._warned:
                self._warned.add((name, arm_name))
                log.warning(
                    "rollout of %s names arm %r, which the migration (or its provider) does not"
                    " have: its calls are served by the primary",
                    name,
                    arm_name,
                )
            return None
        return Choice(name, arm, arm.provider, provider, request, headers)

    def _segment(self, headers: Mapping[str, str], request: dict[str, Any]) -> dict[str, str]:
        return segment_labels(headers, request, self._label_headers, self._segment_body)

    @staticmethod
    def _key(
        rollout: RolloutSettings,
        headers: Mapping[str, str],
        request: dict[str, Any],
        segment: Mapping[str, str],
    ) -> str:
        source = rollout.sticky_source
        value: str | None = None
        if source is not None:
            kind, name = source
            if kind == "segment":
                value = segment.get(name)
            elif kind == "header":
                value = headers.get(name)
            else:
                value = scalar_at(request, name)
        if not value:
            return "call:" + os.urandom(8).hex()  # decided on its own
        return f"{rollout.sticky}={value}"
