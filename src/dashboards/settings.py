"""`shadowjudge.yaml`: the one settings model, built once by the CLI and passed down.

Each package owns its sections (`mirror.config`, `judge.config`); this module, at the top of
the import flow, composes them. Loading fails at start with a `ConfigError` whose message names
the file and the key (`capture.redact[1].pattern: not a valid regular expression`), never with a
traceback, and unknown keys are errors so a typo is not a setting silently ignored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from judge.config import StoreSettings
from mirror.config import (
    BusSettings,
    CaptureSettings,
    Providers,
    SidecarSettings,
    parse_host_port,
)
from mirror.errors import ConfigError

DEFAULT_PATH = Path("shadowjudge.yaml")


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8701"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_host_port(value, "listen")
        return value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: Providers
    sidecar: SidecarSettings = Field(default_factory=SidecarSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    dashboards: DashboardSettings = Field(default_factory=DashboardSettings)
    #: Hash of the file's content: recorded beside decisions so an audit knows the rules.
    config_hash: str = ""

    @field_validator("sidecar")
    @classmethod
    def _upstreams_exist(cls, value: SidecarSettings, info: Any) -> SidecarSettings:
        providers = info.data.get("providers") or {}
        for kind, name in value.upstream.items():
            if name not in providers:
                raise ValueError(f"upstream.{kind.value}: no provider named {name!r}")
            if providers[name].kind is not kind:
                raise ValueError(f"upstream.{kind.value}: provider {name!r} is not of that kind")
        return value


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key or '<root>'}: {message}")
    return "\n".join(lines)


def parse_settings(data: Any, source: str = "settings", config_hash: str = "") -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return Settings.model_validate({**data, "config_hash": config_hash})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def load_settings(path: Path | None) -> Settings:
    """Settings from `path`; with None, from ./shadowjudge.yaml if it exists, else defaults."""
    if path is None:
        if not DEFAULT_PATH.exists():
            return parse_settings({}, "defaults")
        path = DEFAULT_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from exc
    return parse_settings(data, str(path), hashlib.sha256(raw).hexdigest()[:16])
