"""The migrations' settings: the rollout section's schema, its defaults and the keys its errors
name; the match rules the runner and the sidecar share."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboards.settings import load_settings, parse_settings
from mirror.config import parse_duration
from mirror.errors import ConfigError
from mirror.events import Api
from mirror.migrations import (
    ArmSettings,
    EmbeddingMigrationSettings,
    EmbeddingSideSettings,
    MatchSettings,
    MigrationSettings,
    RolloutSettings,
)

ROOT = Path(__file__).resolve().parents[2]
SONNET = {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-6"}
GPT = {"name": "gpt", "provider": "openai", "model": "gpt-4.1"}


def settings_with(rollout: Any, arms: list[dict[str, Any]] | None = None) -> MigrationSettings:
    migration = {"name": "m", "arms": arms if arms is not None else [SONNET], "rollout": rollout}
    return parse_settings({"migrations": [migration]}).migrations[0]


def error_of(rollout: Any, arms: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_with(rollout, arms)
    return str(caught.value)


def test_the_defaults_and_the_only_arm() -> None:
    rollout = settings_with({}).rollout
    assert rollout == RolloutSettings(arm="sonnet")
    assert rollout.sticky is None and rollout.weight == 0.0 and rollout.steps == ()
    assert rollout.hold == timedelta(minutes=10)
    assert settings_with(None).rollout is None
    # Built in Python, the only arm is filled in as from YAML.
    built = MigrationSettings(name="m", arms=(ArmSettings(**SONNET),), rollout=RolloutSettings())
    assert built.rollout is not None and built.rollout.arm == "sonnet"


def test_the_full_section() -> None:
    rollout = settings_with(
        {
            "arm": "gpt",
            "sticky": "header:X-User-Id",
            "weight": 0.05,
            "steps": [0.05, 0.25, 0.5, 1.0],
            "hold": "90s",
        },
        arms=[SONNET, GPT],
    ).rollout
    assert rollout is not None
    assert rollout.arm == "gpt"
    assert rollout.sticky == "header:x-user-id"  # header names are matched lower-case
    assert rollout.sticky_source == ("header", "x-user-id")
    assert rollout.steps == (0.05, 0.25, 0.5, 1.0)
    assert rollout.hold == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("sticky", "source"),
    [
        ("segment.user", ("segment", "user")),
        ("body:metadata.user_id", ("body", "metadata.user_id")),
        ("body:user", ("body", "user")),
        (None, None),
    ],
)
def test_sticky_sources(sticky: str | None, source: tuple[str, str] | None) -> None:
    rollout = settings_with({"sticky": sticky}).rollout
    assert rollout is not None and rollout.sticky_source == source


@pytest.mark.parametrize(
    ("rollout", "arms", "message"),
    [
        ({"arm": "x"}, None, "migrations[0].rollout.arm: no arm named 'x' (arms: sonnet)"),
        ({}, [SONNET, GPT], "migrations[0].rollout.arm: required with several arms (arms:"),
        ({"arm": "x"}, [SONNET, GPT], "no arm named 'x' (arms: sonnet, gpt)"),
        ({"sticky": "user"}, None, "migrations[0].rollout.sticky: must be segment.<label>"),
        ({"sticky": "header:authorization"}, None, "rollout.sticky: 'authorization' carries"),
        ({"sticky": "body:"}, None, "migrations[0].rollout.sticky: must be"),
        ({"weight": 1.5}, None, "migrations[0].rollout.weight: Input should be less than"),
        ({"steps": [0.05, 0.05]}, None, "rollout.steps: 0.05 does not increase on the step"),
        ({"steps": [0.0, 0.5]}, None, "migrations[0].rollout.steps: 0.0 is not a share"),
        ({"steps": [0.5, 1.5]}, None, "rollout.steps: 1.5 is not a share in (0, 1]"),
        ({"hold": "ten minutes"}, None, "migrations[0].rollout.hold: expected a duration like"),
        ({"hold": "0s"}, None, "migrations[0].rollout.hold: must be a positive duration"),
        ({"speed": 1}, None, "migrations[0].rollout.speed: unknown key"),
    ],
)
def test_errors_name_the_key(rollout: Any, arms: list[dict[str, Any]] | None, message: str) -> None:
    assert message in error_of(rollout, arms)


def test_a_noise_only_migration_has_no_arm_to_serve() -> None:
    migration = {"name": "m", "noise_rate": 0.1, "rollout": {}}
    with pytest.raises(ConfigError, match=r"migrations\[0\].rollout.arm: the migration has no"):
        parse_settings({"migrations": [migration]})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h", 3600), ("1d", 86400), ("250ms", 0.25), (45, 45)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_the_commented_example_section_is_valid(tmp_path: Path) -> None:
    lines = (ROOT / "shadowjudge.example.yaml").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("    # rollout:")))
    end = start
    while end < len(lines) and lines[end].startswith("    # "):
        lines[end] = "    " + lines[end].removeprefix("    # ")
        end += 1
    assert end - start == 6
    uncommented = "\n".join(lines)
    path = tmp_path / "shadowjudge.yaml"
    path.write_text(uncommented)
    rollout = load_settings(path).migrations[0].rollout
    assert rollout is not None
    assert rollout.arm == "sonnet" and rollout.sticky == "segment.user"
    assert rollout.steps == (0.05, 0.25, 0.5, 1.0) and rollout.hold == timedelta(minutes=10)


def test_the_runner_and_the_sidecar_match_by_the_same_rules() -> None:
    match = MatchSettings(
        api=(Api.OPENAI_CHAT,),
        model=("gpt-4o*",),
        segment={"route": ("support",)},
    )
    assert match.matches_parts(Api.OPENAI_CHAT, "gpt-4o-mini", {"route": "support"})
    assert not match.matches_parts(Api.ANTHROPIC_MESSAGES, "gpt-4o", {"route": "support"})
    assert not match.matches_parts(Api.OPENAI_CHAT, "gpt-5", {"route": "support"})
    assert not match.matches_parts(Api.OPENAI_CHAT, None, {"route": "support"})
    assert not match.matches_parts(Api.OPENAI_CHAT, "gpt-4o", {})


def test_a_rollout_without_its_providers_key_is_said_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dashboards.settings import start_warnings

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    migration = {"name": "m", "arms": [SONNET], "rollout": {"weight": 0.1}}
    (warning,) = start_warnings(parse_settings({"migrations": [migration]}))
    assert warning.startswith("providers.anthropic.api_key_env: environment variable")
    assert warning.endswith(
        "; the rollouts of m/sonnet fall back to the primary (no_key) unless the app itself"
        " calls that provider"
    )


E5 = {
    "name": "e5",
    "provider": "openai",
    "model": "multilingual-e5-small",
    "embedding": {"query_prefix": "query: ", "document_prefix": "passage: "},
}


def embedding_migration(
    embeddings: Any, arms: list[dict[str, Any]] | None = None, **more: Any
) -> Any:
    migration = {"name": "m", "embeddings": embeddings, "arms": arms or [E5], **more}
    return parse_settings({"migrations": [migration]}).migrations[0]


def test_an_embedding_migration_and_its_defaults() -> None:
    migration = embedding_migration({"thresholds": [0.75, 0.8], "primary": {"dimensions": 512}})
    embeddings = migration.embeddings
    assert embeddings == EmbeddingMigrationSettings(
        primary=EmbeddingSideSettings(dimensions=512), thresholds=(0.75, 0.8)
    )
    assert embeddings.reference_size == 5000 and embeddings.role == "auto"
    assert embeddings.retention_days == 30
    assert embeddings.primary.normalize and embeddings.primary.version is None
    side = migration.arms[0].embedding
    assert side == EmbeddingSideSettings(query_prefix="query: ", document_prefix="passage: ")
    assert embedding_migration({}).embeddings == EmbeddingMigrationSettings()
    assert embedding_migration({"role": "segment.kind"}).embeddings.role == "segment.kind"
    # Not an embedding migration: no section, no arm side.
    assert settings_with(None).embeddings is None and settings_with(None).arms[0].embedding is None


@pytest.mark.parametrize(
    ("embeddings", "arms", "more", "message"),
    [
        ({"reference_size": 0}, None, {}, "migrations[0].embeddings.reference_size: Input should"),
        ({"retention_days": 0}, None, {}, "migrations[0].embeddings.retention_days: Input should"),
        ({"role": "queries"}, None, {}, "migrations[0].embeddings.role: must be auto, query,"),
        ({"role": "segment."}, None, {}, "migrations[0].embeddings.role: must be auto"),
        ({"thresholds": [0.7, 1.5]}, None, {}, "embeddings.thresholds: 1.5 is not a similarity"),
        ({"primary": {"dimensions": 0}}, None, {}, "embeddings.primary.dimensions: Input should"),
        ({"primary": {"prefix": "q: "}}, None, {}, "embeddings.primary.prefix: unknown key"),
        ({"primary": {"version": ""}}, None, {}, "migrations[0].embeddings.primary.version:"),
        ({}, [{**E5, "embedding": {"dimensions": -1}}], {}, "arms[0].embedding.dimensions:"),
        ({}, None, {"match": {"api": ["openai.chat_completions"]}}, "migrations[0].match.api: an"),
        (None, [E5], {}, "migrations[0].arms[0].embedding: only an embedding"),
        ({}, None, {"rollout": {}}, "migrations[0].rollout: an embedding migration only shadows"),
    ],
)
def test_embedding_errors_name_the_key(
    embeddings: Any, arms: list[dict[str, Any]] | None, more: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        embedding_migration(embeddings, arms, **more)
    assert message in str(caught.value)


def test_the_runner_names_its_embedding_cache() -> None:
    runner = parse_settings({"runner": {"embedding_cache": "/tmp/x.sqlite3"}}).runner
    assert runner.embedding_cache == Path("/tmp/x.sqlite3")
    assert parse_settings({}).runner.embedding_cache == Path("var/embeddings/cache.sqlite3")
    with pytest.raises(ConfigError, match=r"runner.embedding_cache_max_age_days: Input should"):
        parse_settings({"runner": {"embedding_cache_max_age_days": 0}})


def test_the_commented_embedding_migration_is_valid(tmp_path: Path) -> None:
    lines = (ROOT / "shadowjudge.example.yaml").read_text().splitlines()
    start = lines.index("  # - name: search-to-e5")
    uncommented = [*lines[:start], *(line.replace("  # ", "  ", 1) for line in lines[start:])]
    path = tmp_path / "shadowjudge.yaml"
    path.write_text("\n".join(uncommented))
    settings = load_settings(path)
    migration = settings.migrations[-1]
    assert migration.name == "search-to-e5" and migration.embeddings is not None
    assert migration.embeddings.primary.dimensions == 512
    assert migration.embeddings.thresholds == (0.75,)
    side = migration.arms[0].embedding
    assert side is not None and side.query_prefix == "query: "
    assert settings.runner.embedding_cache == Path("var/embeddings/cache.sqlite3")
