"""`shadowjudge init`: a short, commented starter `shadowjudge.yaml` in the current directory.

From `--primary MODEL --candidate MODEL [--judge MODEL]`; what is not given is asked for on a
terminal, and taken from `DEFAULTS` otherwise (and said so). A model's provider is read from
its name (`gpt-*`, `o1*`, `o3*`, `o4*`, `chatgpt-*`: OpenAI; `claude-*`: Anthropic) or given as
`provider:model`. The file is validated like `shadowjudge check` before it is written, and an
existing one is kept unless `--force`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dashboards.settings import parse_settings
from mirror.errors import ConfigError

#: (primary, candidate, judge) when neither a flag nor a terminal says otherwise.
DEFAULTS = ("gpt-4o", "claude-sonnet-4-5", "gpt-4.1")
_OPENAI = re.compile(r"^(gpt-|chatgpt-|o[134]($|-))")
_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")

TEMPLATE = """\
# shadowjudge.yaml, written by `shadowjudge init`. `shadowjudge check` validates it;
# shadowjudge.example.yaml lists every setting with its default.
#
# Point the app's SDK at the sidecar; its own key passes through to the provider untouched:
#   openai.OpenAI(base_url="http://127.0.0.1:8700/v1")
#   anthropic.Anthropic(base_url="http://127.0.0.1:8700")
# then `shadowjudge run`, and open the dashboards at http://127.0.0.1:8701.

# The providers. A key never goes in this file: each names the environment variable holding
# the key the runner (the replays) and the judge use.
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com
    api_key_env: OPENAI_API_KEY
  anthropic:
    kind: anthropic
    base_url: https://api.anthropic.com
    api_key_env: ANTHROPIC_API_KEY

sidecar:
  listen: 127.0.0.1:8700        # the address the app calls instead of the provider

# A migration: the app's calls to the primary model are replayed to the candidate (an arm),
# and both answers are judged.
migrations:
  - name: {migration}
    match:
      model: [{primary_model}]  # the model the app asks for; globs work too: "gpt-4o-2024-*"
    sampling: {{rate: 0.1}}           # the share of matching calls replayed (chosen by a hash)
    noise_rate: 0.05                # of those, also asked of the primary again: the noise floor
    # daily_spend_usd: 20           # a cap on the replays' cost per UTC day
    arms:
      - {{name: {arm}, provider: {candidate_provider}, model: {candidate_model}}}

# The LLM judge: asked whether two answers mean the same when the exact and JSON checks cannot
# tell (each pair twice, both orders). Without it those pairs are counted as not judged.
judge:
  provider: {judge_provider}
  model: {judge_model}

# Rollback rules, written before the migration starts (docs/triggers.md). Each fires, clears
# or holds from intervals that stay valid however often they are looked at; none decides
# before it has 200 pairs.
triggers:
  rules:
    # the candidate refuses more than the primary, by over 0.5 points, on the same calls
    - {{name: refusals-up, metric: refusal_difference, margin: 0.005}}
    # fewer than 90% of the candidate's answers mean the same as the primary's
    - {{name: equivalence-low, metric: equivalence_rate, threshold: 0.90}}

# The pages and their JSON API. Open on loopback; elsewhere they need a token (token_env).
dashboards:
  listen: 127.0.0.1:8701
"""


@dataclass(frozen=True, slots=True)
class Model:
    provider: str
    name: str

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"


def add_parser(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="write a commented starter shadowjudge.yaml (or -c FILE) here",
        description=(
            "Write a short, commented shadowjudge.yaml: the two providers, one migration from "
            "the primary model to the candidate, the LLM judge, two rollback rules and the "
            "dashboards. Missing models are asked for on a terminal, else "
            f"{', '.join(DEFAULTS)}. A provider is read from the model's name, or given as "
            "openai:MODEL or anthropic:MODEL."
        ),
    )
    init.add_argument("--primary", help=f"the model the app calls today ({DEFAULTS[0]})")
    init.add_argument("--candidate", help=f"the model to try instead ({DEFAULTS[1]})")
    init.add_argument("--judge", help=f"the LLM judge's model ({DEFAULTS[2]})")
    init.add_argument("--force", action="store_true", help="replace an existing file")


def model(text: str, flag: str) -> Model:
    """`provider:model`, or a model whose name says its provider."""
    provider, sep, name = text.strip().partition(":")
    if sep:
        if provider not in ("openai", "anthropic") or not name:
            raise ConfigError(f"{flag} {text}: write openai:MODEL or anthropic:MODEL")
        return Model(provider, name)
    name = text.strip()
    if _OPENAI.match(name):
        return Model("openai", name)
    if name.startswith("claude-"):
        return Model("anthropic", name)
    raise ConfigError(
        f"{flag} {text}: cannot tell its provider from the name; write openai:{name} or"
        f" anthropic:{name}"
    )


def render(primary: Model, candidate: Model, judge: Model) -> str:
    def quoted(value: str) -> str:
        return yaml.safe_dump(value, default_style='"').strip()

    arm = _NAME.sub("-", candidate.name)[:100]
    return TEMPLATE.format(
        migration=quoted(_NAME.sub("-", f"{primary.name}-to-{candidate.name}")[:100]),
        primary_model=quoted(primary.name),
        arm=quoted(arm if arm != "noise" else "candidate"),
        candidate_provider=candidate.provider,
        candidate_model=quoted(candidate.name),
        judge_provider=judge.provider,
        judge_model=quoted(judge.name),
    )


def _choose(args: argparse.Namespace) -> tuple[Model, Model, Model]:
    given = (args.primary, args.candidate, args.judge)
    names = ("primary model", "candidate model", "judge model")
    flags = ("--primary", "--candidate", "--judge")
    flagged = [model(v, f) if v is not None else None for v, f in zip(given, flags, strict=True)]
    asking = sys.stdin.isatty()
    if None in flagged and not asking:
        defaulted = [f"{n} {d}" for n, d, m in zip(names, DEFAULTS, flagged, strict=True) if not m]
        sys.stderr.write(f"not a terminal: using the defaults, {', '.join(defaulted)}\n")
    primary, candidate, judge = (
        found or (_ask(name, default, flag) if asking else model(default, flag))
        for found, name, default, flag in zip(flagged, names, DEFAULTS, flags, strict=True)
    )
    return primary, candidate, judge


def _ask(name: str, default: str, flag: str) -> Model:
    """Ask on the terminal until the answer names a model whose provider is known."""
    while True:
        try:
            answer = input(f"{name} [{default}]: ").strip() or default
        except EOFError:
            answer = default
        try:
            return model(answer, flag)
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")


def run(args: argparse.Namespace, path: Path) -> int:
    if path.exists() and not args.force:
        sys.stderr.write(f"shadowjudge: {path} exists: left as it is (--force replaces it)\n")
        return 2
    primary, candidate, judge = _choose(args)
    text = render(primary, candidate, judge)
    parse_settings(yaml.safe_load(text), str(path))  # what `check` will say: valid
    path.write_text(text, encoding="utf-8")
    # The runner replays to the candidate and, for the noise arm, to the primary; the judge.
    keys = sorted({f"{m.provider.upper()}_API_KEY" for m in (primary, candidate, judge)})
    sys.stdout.write(
        f"wrote {path}: primary {primary}, candidate {candidate}, judge {judge}\n"
        f"next: export {' and '.join(keys)}, then `shadowjudge check` and `shadowjudge run`;"
        " point the app at http://127.0.0.1:8700\n"
    )
    return 0
