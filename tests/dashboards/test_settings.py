"""The settings file: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards.cli import main
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
        ("sidecar: {upstream: {openai: nope}}", "sidecar: upstream.openai: no provider named"),
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


def test_cli_calibrate_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "completion,final_label,model\n"
        '"I\'m sorry, but I can\'t help with that.",2_full_refusal,a\n'
        '"Use kill -9 with the process id.",1_full_compliance,a\n'
    )
    assert main(["calibrate", "refusal", "--labels", str(labels), "--by", "model"]) == 0
    out = capsys.readouterr().out
    assert "model=a" in out and "1.000" in out
