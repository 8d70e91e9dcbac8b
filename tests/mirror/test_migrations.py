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
from mirror.migrations import ArmSettings, MatchSettings, MigrationSettings, RolloutSettings

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
