"""`shadowjudge.yaml`: the one settings model, built once by the CLI and passed down.

Each package owns its sections (`mirror.config`, `judge.config`); this module, at the top of
the import flow, composes them. Loading fails at start with a `ConfigError` whose message names
the file and the key (`capture.redact[1].pattern: not a valid regular expression`), never with a
traceback, and unknown keys are errors so a typo is not a setting silently ignored.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dashboards.triggers.config import TriggerSettings
from judge.config import JudgeSettings, StoreSettings
from mirror.config import (
    BusSettings,
    CaptureSettings,
    Providers,
    SidecarSettings,
    parse_host_port,
)
from mirror.errors import ConfigError
from mirror.events import ProviderKind
from mirror.migrations import MigrationSettings, RunnerSettings
from mirror.pricing import Price, PriceTable

DEFAULT_PATH = Path("shadowjudge.yaml")


class DashboardSettings(BaseModel):
    """The `dashboards:` section. Reads are open without a token, which is only safe on
    loopback: a non-loopback `listen` needs `token_env`. With a token every page requires it,
    and writes (labels, rollout changes) are possible only with one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8701"
    #: Name of the environment variable holding the dashboards' token (never the token).
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: The address people open, for links in the digest (default: http://<listen>).
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    #: Name of the environment variable holding a Slack incoming-webhook URL for the digest.
    digest_slack_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_host_port(value, "listen")
        return value

    @model_validator(mode="after")
    def _safe(self) -> DashboardSettings:
        host, _ = parse_host_port(self.listen, "listen")
        if self.token_env is None and not _loopback(host):
            raise ValueError(
                f"listen: {self.listen} is reachable from other machines; set"
                " dashboards.token_env (the pages would be open to anyone) or listen on 127.0.0.1"
            )
        return self

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.listen}").rstrip("/")

    def token(self) -> str | None:
        """The token from the environment; a ConfigError names the variable when it is unset."""
        if self.token_env is None:
            return None
        value = os.environ.get(self.token_env, "")
        if not value:
            raise ConfigError(
                f"dashboards.token_env: environment variable {self.token_env} is not set"
            )
        return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RunSettings(BaseModel):
    """The `run:` section: the embedded one-process run as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: On SIGTERM/SIGINT, how long the embedded run keeps its runner and judge going after the
    #: sidecar stopped, so the calls it captured are replayed, judged and stored; what is still
    #: on the in-process bus after it is dropped, logged and counted. A second signal: at once.
    drain_timeout_s: float = Field(default=10.0, ge=0)
    #: The CPU policy of `run`'s own threads (runner, judge, store, pages) once its sidecar's
    #: process runs: `idle` (Linux's `SCHED_IDLE`: whatever else wakes on the machine, the app
    #: and the sidecar first, takes a core from them at once; they get the CPU the rest leave)
    #: or `normal` (they share it as equals). The sidecar's process always runs `normal`.
    cpu_policy: Literal["idle", "normal"] = "idle"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: Providers
    sidecar: SidecarSettings = Field(default_factory=SidecarSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    dashboards: DashboardSettings = Field(default_factory=DashboardSettings)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    #: Dollars per million tokens, over the built-in list prices (`mirror.pricing`).
    prices: dict[str, Price] = Field(default_factory=dict)
    migrations: tuple[MigrationSettings, ...] = ()
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    run: RunSettings = Field(default_factory=RunSettings)
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

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems = []
        names = [m.name for m in self.migrations]
        table = PriceTable(self.prices)
        for i, migration in enumerate(self.migrations):
            where = f"migrations[{i}]"
            if names.count(migration.name) > 1:
                problems.append(f"{where}.name: duplicate migration name {migration.name!r}")
            for j, arm in enumerate(migration.arms):
                if arm.provider not in self.providers:
                    problems.append(
                        f"{where}.arms[{j}].provider: no provider named {arm.provider!r}"
                    )
                elif (
                    migration.embeddings is not None
                    and self.providers[arm.provider].kind is not ProviderKind.OPENAI
                ):
                    problems.append(
                        f"{where}.arms[{j}].provider: {arm.provider!r} is an"
                        f" {self.providers[arm.provider].kind.value} provider; an embedding"
                        " migration's arms call the OpenAI embeddings API"
                    )
                if migration.daily_spend_usd and table.price(arm.model) is None:
                    problems.append(
                        f"{where}.arms[{j}].model: no price for {arm.model!r} under a spend cap;"
                        " add it under prices"
                    )
        if self.judge.provider is not None:
            if self.judge.provider not in self.providers:
                problems.append(f"judge.provider: no provider named {self.judge.provider!r}")
            if not self.judge.model:
                problems.append("judge.model: required when judge.provider is set")
        for i, rule in enumerate(self.triggers.rules):
            for pattern in rule.migrations:
                if pattern != "*" and not any(fnmatchcase(n, pattern) for n in names):
                    problems.append(
                        f"triggers.rules[{i}].migrations: no migration matches {pattern!r}"
                    )
        for name in self.runner.limits:
            if name not in self.providers:
                problems.append(f"runner.limits.{name}: no provider named {name!r}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


_INNER_KEY = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.S)


def start_warnings(settings: Settings, *, from_file: bool = True) -> list[str]:
    """What a valid configuration still leaves off, said at start by `run` and `check`: no
    settings file at all (`from_file` false: the built-in defaults), a key variable unset for a
    provider that arms replay to (or a rollout serves from), and no migration at all."""
    found = []
    if not from_file:
        found.append(
            f"no settings file ({DEFAULT_PATH}): running with the defaults (the sidecar on"
            f" {settings.sidecar.listen} forwarding to OpenAI and Anthropic, the dashboards on"
            f" {settings.dashboards.url}, the store at {settings.store.url}); nothing is"
            " shadowed: `shadowjudge init` writes a starter config, `shadowjudge demo` shows"
            " the whole loop without API keys"
        )
    elif not settings.migrations:
        found.append(
            "no migrations configured: the sidecar forwards and captures calls, nothing is"
            " replayed or judged; add one under migrations (see shadowjudge.example.yaml)"
        )
    for name, provider in sorted(settings.providers.items()):
        arms = [
            f"{m.name}/{arm.name}"
            for m in settings.migrations
            for arm in m.arms
            if arm.provider == name
        ]
        if arms and provider.api_key_env and not provider.api_key():
            serving = [
                f"{m.name}/{m.rollout.arm}"
                for m in settings.migrations
                if m.rollout is not None
                and m.rollout.arm in {a.name for a in m.arms if a.provider == name}
            ]
            found.append(
                f"providers.{name}.api_key_env: environment variable {provider.api_key_env} is"
                f" not set: the replays to {', '.join(arms)} are skipped (the app's own calls"
                " through the sidecar still carry the app's key)"
                + (
                    f"; the rollouts of {', '.join(serving)} fall back to the primary (no_key)"
                    " unless the app itself calls that provider"
                    if serving
                    else ""
                )
            )
    return found


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        inner = _INNER_KEY.match(message)
        if key and error["type"] == "value_error" and inner:
            # a section's own check names the key inside it: `dashboards` + `listen: ...`
            key, message = f"{key}.{inner[1]}", inner[2]
        if key:
            lines.append(f"{source}: {key}: {message}")
        else:  # cross-section checks name their keys themselves, one per line
            lines.extend(f"{source}: {line}" for line in message.splitlines())
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
