"""`--judge` of `shadowjudge embeddings compare` and `embeddings report`: the settings' LLM
judge, refused naming the flag when none is configured. The question, both orders and the
verdicts are `dashboards.analysis.list_judge` (the embedding page asks through it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dashboards.analysis.list_judge import JUDGE_SYSTEM, ask_judge, judge_prompt
from mirror.errors import ConfigError

if TYPE_CHECKING:
    from dashboards.settings import Settings
    from judge.scorers.pairwise import PairwiseJudge

__all__ = ["JUDGE_SYSTEM", "ask_judge", "configured_judge", "judge_prompt"]


def configured_judge(settings: Settings) -> PairwiseJudge:
    from judge.scorers.pairwise import PairwiseJudge

    judge = PairwiseJudge.from_settings(settings.judge, settings.providers)
    if judge is None:
        raise ConfigError("--judge: no LLM judge configured (set judge.provider and judge.model)")
    return judge
