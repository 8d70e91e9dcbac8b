"""Alert sinks: Alertmanager (its v4 webhook payload, so existing receivers work), Slack
incoming webhooks, and a generic JSON sink.

A sink's URL is a secret: it is read from the environment variable the sink names, once, at
start (a missing one is a ConfigError naming the key), and never logged; a failed delivery is
logged with the sink's name and the HTTP status, and never raises into the evaluator.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from dashboards.triggers.config import SinkSettings
from dashboards.triggers.rules import Finding
from mirror.errors import ConfigError

log = logging.getLogger("shadowjudge.triggers")
#: Alertmanager's "not resolved yet" end time.
_OPEN_END = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class AlertEvent:
    status: str  # "firing" or "resolved"
    rule: str
    metric: str
    migration: str
    arm: str
    segment: str
    finding: Finding
    starts_at: datetime
    ends_at: datetime | None
    url: str
    rollback: bool

    @property
    def fingerprint(self) -> str:
        key = "\0".join((self.rule, self.migration, self.arm, self.segment))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def summary(self) -> str:
        f = self.finding
        where = f"{self.migration}/{self.arm}" + (
            "" if self.segment == "*" else f" [{self.segment}]"
        )
        return (
            f"{self.rule} {self.status} on {where}: {self.metric} {f.estimate:.4g}"
            f" (interval {f.lower:.4g} to {f.upper:.4g}, n={f.n}) against {f.limit:.4g}"
        )


@dataclass
class Sink:
    name: str
    kind: str
    url: str
    repeat_interval: timedelta

    @classmethod
    def from_settings(cls, settings: SinkSettings, key: str) -> Sink:
        url = os.environ.get(settings.url_env, "")
        if not url:
            raise ConfigError(f"{key}.url_env: environment variable {settings.url_env} is not set")
        return cls(settings.name, settings.kind, url, settings.repeat_interval)

    def payload(self, events: list[AlertEvent], external_url: str) -> dict[str, Any]:
        if self.kind == "alertmanager":
            return alertmanager_payload(self.name, events, external_url)
        if self.kind == "slack":
            return {"text": "\n".join(_slack_line(e) for e in events)}
        return {"source": "shadowjudge", "alerts": [_json_event(e) for e in events]}

    def send(self, events: list[AlertEvent], external_url: str) -> bool:
        try:
            answer = httpx.post(self.url, json=self.payload(events, external_url), timeout=10)
        except httpx.HTTPError as exc:
            log.warning("alert sink %s: not delivered (%s)", self.name, type(exc).__name__)
            return False
        if answer.status_code >= 300:
            log.warning("alert sink %s: HTTP %d", self.name, answer.status_code)
            return False
        return True


def _labels(event: AlertEvent) -> dict[str, str]:
    return {
        "alertname": event.rule,
        "metric": event.metric,
        "migration": event.migration,
        "arm": event.arm,
        "segment": event.segment,
        "severity": "critical" if event.rollback else "warning",
        "source": "shadowjudge",
    }


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def alertmanager_payload(
    receiver: str, events: list[AlertEvent], external_url: str
) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4."""
    alerts = []
    for event in events:
        f = event.finding
        alerts.append(
            {
                "status": event.status,
                "labels": _labels(event),
                "annotations": {
                    "summary": event.summary,
                    "estimate": f"{f.estimate:.6g}",
                    "lower": f"{f.lower:.6g}",
                    "upper": f"{f.upper:.6g}",
                    "limit": f"{f.limit:.6g}",
                    "n": str(f.n),
                    "decision": f.decision.value,
                },
                "startsAt": _time(event.starts_at),
                "endsAt": _time(event.ends_at) if event.ends_at else _OPEN_END,
                "generatorURL": event.url,
                "fingerprint": event.fingerprint,
            }
        )
    common = {
        k: v for k, v in _labels(events[0]).items() if all(_labels(e).get(k) == v for e in events)
    }
    return {
        "version": "4",
        "groupKey": "{}:" + "{alertname=" + repr(events[0].rule) + "}",
        "truncatedAlerts": 0,
        "status": "firing" if any(e.status == "firing" for e in events) else "resolved",
        "receiver": receiver,
        "groupLabels": {"alertname": events[0].rule},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": external_url,
        "alerts": alerts,
    }


def _slack_line(event: AlertEvent) -> str:
    mark = ":rotating_light:" if event.status == "firing" else ":white_check_mark:"
    return f"{mark} <{event.url}|{event.summary}>"


def _json_event(event: AlertEvent) -> dict[str, Any]:
    f = event.finding
    return {
        "status": event.status,
        **_labels(event),
        "estimate": f.estimate,
        "lower": f.lower,
        "upper": f.upper,
        "limit": f.limit,
        "n": f.n,
        "decision": f.decision.value,
        "starts_at": _time(event.starts_at),
        "ends_at": _time(event.ends_at) if event.ends_at else None,
        "url": event.url,
    }
