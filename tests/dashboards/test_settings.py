"""The settings file: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards.command.main import main
from dashboards.settings import load_settings, parse_settings
from mirror.errors import ConfigError
from mirror.events import ProviderKind


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shadowjudge.yaml"
    path.write_text(text)
    return path


def test_defaults_are_safe() -> None:
    settings = parse_settings({})
    assert settings.sidecar.listen == "127.0.0.1:8700"
    assert settings.dashboards.listen == "127.0.0.1:8701"
    assert settings.bus.is_memory and settings.store.url.startswith("chdb://")
    assert settings.providers["anthropic"].kind is ProviderKind.ANTHROPIC
    assert settings.bus.producer.idempotence is False


def test_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
providers:
  oai: {kind: openai, base_url: "http://127.0.0.1:9/", api_key_env: OAI_KEY}
  claude: {kind: anthropic, base_url: "https://api.anthropic.com"}
sidecar: {listen: "127.0.0.1:18700", upstream: {openai: oai}}
bus: kafka://127.0.0.1:9092,127.0.0.1:9093
store: chdb:///tmp/x
capture:
  max_body_bytes: 4096
  redact: [{name: email, pattern: '[\\w.]+@[\\w.]+'}]
  segment_headers: {tenant: X-Tenant}
""",
    )
    settings = load_settings(path)
    assert settings.providers["oai"].base_url == "http://127.0.0.1:9"
    assert settings.bus.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9093"
    assert settings.capture.segment_headers == {"tenant": "x-tenant"}
    assert len(settings.config_hash) == 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bus: rabbit://x", "bus.url: must be memory:// or kafka://host:port"),
        ("capture: {redact: [{name: a, pattern: '(['}]}", "capture.redact[0].pattern: not a valid"),
        ("capture: {max_bytes: 3}", "capture.max_bytes: unknown key"),
        ("capture: {replay_headers: [Authorization]}", "capture.replay_headers: Value error"),
        ("sidecar: {listen: localhost}", "sidecar.listen: listen must be HOST:PORT"),
        ("providers: {x: {kind: gemini, base_url: 'http://a'}}", "providers.x.kind"),
        ("sidecar: {upstream: {openai: nope}}", "sidecar.upstream.openai: no provider named"),
        ("store: mysql://x", "store.url: must be chdb"),
        ("- a list", "the top level must be a mapping"),
        ("a: [unclosed", "not valid YAML at line 1"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert message.replace("Value error", "").rstrip(", ") in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_cli_reports_bad_config_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "bus: rabbit://x")
    assert main(["-c", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "bus.url" in err and "Traceback" not in err


def test_cli_check_prints_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(write(tmp_path, "bus: memory://")), "check"]) == 0
    assert '"listen": "127.0.0.1:8700"' in capsys.readouterr().out


def test_cli_check_hides_url_passwords(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(
        tmp_path,
        "store: {url: 'http://judge:s3cret-pw@clickhouse:8123/shadowjudge'}\n"
        "bus: 'kafka://svc:kafka-pw@broker:9092'",
    )
    assert main(["-c", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "kafka-pw" not in out
    assert "http://judge:***@clickhouse:8123/shadowjudge" in out


def test_cli_calibrate_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "completion,final_label,model\n"
        "\"I'm sorry, but I can't help with that.\",2_full_refusal,a\n"
        '"Use kill -9 with the process id.",1_full_compliance,a\n'
    )
    assert main(["calibrate", "refusal", "--labels", str(labels), "--by", "model"]) == 0
    out = capsys.readouterr().out
    assert "model=a" in out and "1.000" in out


MIGRATION = """
migrations:
  - name: m1
    match: {api: [openai.chat_completions], model: ["gpt-4o*"], segment: {route: support}}
    sampling: {rate: 0.2, sticky: segment.user}
    noise_rate: 0.1
    daily_spend_usd: 5
    arms:
      - name: sonnet
        provider: anthropic
        model: claude-sonnet-4-5
        system_prompt: {text: "Be brief.", mode: append}
        params: {max_tokens: 512}
runner: {limits: {anthropic: {concurrency: 4, requests_per_s: 10}}}
prices: {my-model: {input: 1.0, output: 2.0}}
"""


def test_migrations_load(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MIGRATION))
    (migration,) = settings.migrations
    assert migration.match.segment == {"route": ("support",)}
    assert migration.arms[0].system_prompt is not None
    assert settings.runner.limits["anthropic"].concurrency == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("provider: anthropic", "provider: gemini"),
            "migrations[0].arms[0].provider: no provider named 'gemini'",
        ),
        (
            ("model: claude-sonnet-4-5", "model: claude-unknown"),
            "migrations[0].arms[0].model: no price for 'claude-unknown' under a spend cap",
        ),
        (("name: sonnet", "name: noise"), "migrations[0].arms[0].name: Value error"),
        (("params: {max_tokens: 512}", "params: {model: x}"), "migrations[0].arms[0].params"),
        (("rate: 0.2", "rate: 2"), "migrations[0].sampling.rate"),
        (("sticky: segment.user", "sticky: header.user"), "migrations[0].sampling.sticky"),
        (
            ("{anthropic: {concurrency", "{nobody: {concurrency"),
            "runner.limits.nobody: no provider named",
        ),
    ],
)
def test_bad_migrations_name_the_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, MIGRATION.replace(*change)))
    assert message.replace(": Value error", "") in str(caught.value)


def test_duplicate_migrations(tmp_path: Path) -> None:
    entry = MIGRATION.split("migrations:\n", 1)[1].split("runner:")[0]
    text = MIGRATION.replace("runner:", entry + "runner:", 1)
    with pytest.raises(ConfigError, match=r"migrations\[1\].name: duplicate migration name"):
        load_settings(write(tmp_path, text))


def test_the_example_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "shadowjudge.example.yaml"
    settings = load_settings(example)
    assert settings.migrations[0].arms[0].provider == "anthropic"
    assert settings.capture.redact[0].name == "email"


def test_start_warnings_name_the_unset_key_and_the_missing_migrations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dashboards.settings import start_warnings

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert start_warnings(parse_settings({}))[0].startswith("no migrations configured")
    arm = {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-6"}
    found = start_warnings(parse_settings({"migrations": [{"name": "m", "arms": [arm]}]}))
    assert found == [
        "providers.anthropic.api_key_env: environment variable ANTHROPIC_API_KEY is not set:"
        " the replays to m/sonnet are skipped (the app's own calls through the sidecar still"
        " carry the app's key)"
    ]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-x")
    assert start_warnings(parse_settings({"migrations": [{"name": "m", "arms": [arm]}]})) == []


def test_without_a_settings_file_the_start_says_how_to_begin() -> None:
    from dashboards.settings import start_warnings

    assert start_warnings(parse_settings({}), from_file=False) == [
        "no settings file (shadowjudge.yaml): running with the defaults (the sidecar on"
        " 127.0.0.1:8700 forwarding to OpenAI and Anthropic, the dashboards on"
        " http://127.0.0.1:8701, the store at chdb:///./var/shadowjudge); nothing is shadowed:"
        " `shadowjudge init` writes a starter config, `shadowjudge demo` shows the whole loop"
        " without API keys"
    ]


def test_an_embedding_migrations_arms_speak_the_openai_embeddings_api(tmp_path: Path) -> None:
    text = """
migrations:
  - name: vectors
    embeddings: {}
    arms:
      - {name: e5, provider: openai, model: multilingual-e5-small}
      - {name: claude, provider: anthropic, model: claude-sonnet-4}
"""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert "migrations[0].arms[1].provider: 'anthropic' is an anthropic provider" in str(
        caught.value
    )
    assert "arms[0]" not in str(caught.value)
