"""`shadowjudge init`: a starter shadowjudge.yaml that `shadowjudge check` accepts as written,
from flags, from answers on a terminal, or from the defaults (said so); never over a file."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dashboards.command.init import Model, model
from mirror.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
FAST_S = 5.0


def shadowjudge(
    *args: str, cwd: Path, stdin: int | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dashboards.command", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - started


def test_init_then_check(tmp_path: Path) -> None:
    done, took = shadowjudge(
        "init", "--primary", "gpt-4.1-mini", "--candidate", "claude-opus-4-1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "not a terminal: using the defaults, judge model gpt-4.1\n"
    assert done.stdout.splitlines()[0] == (
        "wrote shadowjudge.yaml: primary gpt-4.1-mini (openai), candidate claude-opus-4-1"
        " (anthropic), judge gpt-4.1 (openai)"
    )
    assert took < FAST_S
    written = yaml.safe_load((tmp_path / "shadowjudge.yaml").read_text())
    migration = written["migrations"][0]
    assert migration["name"] == "gpt-4.1-mini-to-claude-opus-4-1"
    assert migration["match"] == {"model": ["gpt-4.1-mini"]}
    assert migration["arms"] == [
        {"name": "claude-opus-4-1", "provider": "anthropic", "model": "claude-opus-4-1"}
    ]
    assert written["judge"] == {"provider": "openai", "model": "gpt-4.1"}
    assert [r["name"] for r in written["triggers"]["rules"]] == ["refusals-up", "equivalence-low"]
    checked, took = shadowjudge("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert '"name": "gpt-4.1-mini-to-claude-opus-4-1"' in checked.stdout
    assert "no settings file" not in checked.stderr
    assert took < FAST_S
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shadowjudge.yaml"]


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("# mine\n")
    done, took = shadowjudge("-c", "mine.yaml", "init", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "shadowjudge: mine.yaml exists: left as it is (--force replaces it)\n",
    )
    assert took < FAST_S
    assert (tmp_path / "mine.yaml").read_text() == "# mine\n"
    done, _ = shadowjudge("-c", "mine.yaml", "init", "--force", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr == (
        "not a terminal: using the defaults, primary model gpt-4o, candidate model"
        " claude-sonnet-4-5, judge model gpt-4.1\n"
    )
    assert "gpt-4o-to-claude-sonnet-4-5" in (tmp_path / "mine.yaml").read_text()


def test_a_model_whose_provider_cannot_be_told(tmp_path: Path) -> None:
    done, took = shadowjudge("init", "--candidate", "llama-3.3-70b", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "shadowjudge: --candidate llama-3.3-70b: cannot tell its provider from the name; write"
        " openai:llama-3.3-70b or anthropic:llama-3.3-70b\n",
    )
    assert took < FAST_S
    assert list(tmp_path.iterdir()) == []


def test_on_a_terminal_it_asks(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        # primary: the default; candidate: one not known, then an explicit one; judge: Claude
        os.write(controller, b"\nmistral-large\nopenai:my-fine-tune\nclaude-sonnet-4-5\n")
        done, took = shadowjudge("init", cwd=tmp_path, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "primary model [gpt-4o]: candidate model [claude-sonnet-4-5]: candidate model"
        " [claude-sonnet-4-5]: judge model [gpt-4.1]: wrote shadowjudge.yaml: primary gpt-4o"
        " (openai), candidate my-fine-tune (openai), judge claude-sonnet-4-5 (anthropic)"
    )
    assert "--candidate mistral-large: cannot tell its provider" in done.stderr
    assert took < FAST_S
    checked, _ = shadowjudge("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_providers_from_model_names() -> None:
    openai = ("gpt-4o", "o1", "o3-mini", "o4-mini", "chatgpt-4o-latest")
    assert {model(name, "--x").provider for name in openai} == {"openai"}
    assert model("claude-haiku-4-5", "--x").provider == "anthropic"
    assert model("anthropic:my-proxy-model", "--x") == Model("anthropic", "my-proxy-model")
    for unknown in ("o1x", "omni", "gemini-2.5-pro", "azure:gpt-4o"):
        with pytest.raises(ConfigError, match=f"--x {unknown}: "):
            model(unknown, "--x")
