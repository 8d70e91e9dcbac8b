"""`Analyst`: the analysis of every migration, built from the store for pages, API and CLI.

Which judge version a migration shows: the one asked for, else the one with the most recent
pairs (ties: the most pairs). A `rejudge` writes a second, complete version beside the first,
and the pages offer both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from dashboards.analysis import queries
from dashboards.analysis.corrections import (
    Labelled,
    corrections,
    judge_agreement,
    labelled_pairs,
)
from dashboards.analysis.figures import ArmAnalysis, Sampling, TriggerState, arm_analysis, utc
from dashboards.analysis.queries import Reader
from dashboards.analysis.window import Window


class WindowModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    since: datetime
    until: datetime
    label: str


class MigrationAnalysis(BaseModel):
    """One migration in one window: its arms (candidates first, the noise arm last)."""

    model_config = ConfigDict(frozen=True)

    migration: str
    window: WindowModel
    segment: str
    judge_version: str
    judge_versions: list[str]
    arms: list[ArmAnalysis]


def latest_version(rows: Sequence[dict[str, Any]]) -> str:
    """The judge version a migration's rows are read at: the one with the most recent pairs,
    ties broken by the most pairs (pages, API and trigger engine alike)."""
    by_version: dict[str, tuple[datetime, int]] = {}
    for row in rows:
        last, pairs = by_version.get(row["judge_version"], (utc(row["last_hour"]), 0))
        by_version[row["judge_version"]] = (
            max(last, utc(row["last_hour"])),
            pairs + int(row["pairs"]),
        )
    return max(by_version, key=lambda v: (*by_version[v], v))


class Analyst:
    """Reads the figures; holds no state but the configuration's sampling shares and models."""

    def __init__(
        self,
        reader: Reader,
        *,
        sampling: Mapping[str, Sampling] | None = None,
        models: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.reader = reader
        self.sampling = dict(sampling or {})
        #: migration -> arm -> candidate model, from the configuration.
        self.models = {m: dict(arms) for m, arms in (models or {}).items()}

    def migrations(self, window: Window) -> list[str]:
        return queries.migrations(self.reader, window)

    def analyse(
        self,
        window: Window,
        *,
        migration: str | None = None,
        segment: str = "*",
        judge_version: str | None = None,
        detail: bool = True,
    ) -> list[MigrationAnalysis]:
        """Every migration (or one) with data in the window. `detail` adds the not-judged
        examples, reviewer corrections and trigger states (one query more per arm)."""
        rows = queries.arm_stats(self.reader, window, migration=migration, segment=segment)
        drill = self.drill(window, rows, migration, segment) if detail else None
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault(row["migration"], []).append(row)
        found = []
        for name, mine in grouped.items():
            versions = sorted({r["judge_version"] for r in mine})
            version = judge_version if judge_version in versions else latest_version(mine)
            chosen = [r for r in mine if r["judge_version"] == version]
            found.append(
                MigrationAnalysis(
                    migration=name,
                    window=WindowModel(since=window.since, until=window.until, label=window.label),
                    segment=segment,
                    judge_version=version,
                    judge_versions=versions,
                    arms=self._arms(name, chosen, window, segment, detail, drill),
                )
            )
        return found

    def analysis(
        self,
        migration: str,
        window: Window,
        *,
        segment: str = "*",
        judge_version: str | None = None,
    ) -> MigrationAnalysis | None:
        found = self.analyse(
            window, migration=migration, segment=segment, judge_version=judge_version
        )
        return found[0] if found else None

    def segments(
        self, migration: str, window: Window, judge_version: str
    ) -> dict[str, list[ArmAnalysis]]:
        """The same figures per segment label (`tenant=acme`), without the drill-downs."""
        rows = queries.arm_stats(self.reader, window, migration=migration, by_segment=True)
        by_segment: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["judge_version"] == judge_version:
                by_segment.setdefault(row["segment"], []).append(row)
        return {
            segment: self._arms(migration, mine, window, segment, detail=False)
            for segment, mine in sorted(by_segment.items())
        }

    def _arms(
        self,
        migration: str,
        rows: list[dict[str, Any]],
        window: Window,
        segment: str,
        detail: bool,
        drill: _Drill | None = None,
    ) -> list[ArmAnalysis]:
        sampling = self.sampling.get(migration)
        models = self.models.get(migration, {})
        drill = drill or _Drill()
        noise_row = next((r for r in rows if r["arm_kind"] == "noise"), None)

        def build(row: dict[str, Any], noise: ArmAnalysis | None) -> ArmAnalysis:
            arm, version = row["arm"], row["judge_version"]
            primary_model, candidate_model = drill.models.get((migration, arm), ("", ""))
            found = arm_analysis(
                row,
                window,
                segment=segment,
                models=(primary_model, models.get(arm, candidate_model)),
                sampling=sampling,
                examples=drill.examples.get((migration, arm, version), {}),
                noise=noise,
            )
            if not detail:
                return found
            labelled = drill.labels.get((migration, arm, version), [])
            try:
                corrected = corrections(labelled, found.verdicts, found.judged)
            except ValueError:  # labels the aggregates cannot hold yet (not merged): skip
                corrected = []
            return found.model_copy(
                update={
                    "corrections": corrected,
                    "agreement": judge_agreement(labelled),
                    "triggers": drill.triggers.get((migration, arm), []),
                }
            )

        noise = build(noise_row, None) if noise_row is not None else None
        arms = [build(r, noise) for r in rows if r is not noise_row]
        return arms + ([noise] if noise is not None else [])

    def drill(
        self, window: Window, rows: list[dict[str, Any]], migration: str | None, segment: str
    ) -> _Drill:
        """The drill-downs of every arm at once: one query each, whatever the arm count."""
        found = _Drill()
        if not rows:
            return found
        if any(r["verdict_not_judged"] or r["verdict_error"] for r in rows):
            found.examples = queries.cause_examples(self.reader, window, migration=migration)
        found.models = queries.arm_models(self.reader, window, migration)
        found.labels = labelled_pairs(self.reader, window, migration=migration, segment=segment)
        for row in queries.trigger_states(self.reader, migration):
            state = TriggerState(
                **{k: v for k, v in row.items() if k not in ("last_decided", "migration", "arm")},
                decided_at=utc(row["last_decided"]),
            )
            found.triggers.setdefault((row["migration"], row["arm"]), []).append(state)
        return found


@dataclass
class _Drill:
    examples: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    models: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    labels: dict[tuple[str, str, str], list[Labelled]] = field(default_factory=dict)
    triggers: dict[tuple[str, str], list[TriggerState]] = field(default_factory=dict)
