"""The daily digest: the day's figures, the ten worst disagreements with links, Slack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboards.analysis.service import Analyst
from dashboards.review.digest import (
    build_digest,
    markdown_text,
    post_to_slack,
    render_html,
    render_markdown,
    slack_text,
)
from judge.store.store import Store
from mirror.errors import ConfigError
from simulation.providers import serve
from tests.dashboards.generate import MIGRATION, Generated, generate
from tests.webhook import Receiver

DAY = (datetime.now(UTC) - timedelta(days=1)).date()
START = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)


@pytest.fixture(scope="module")
def data() -> Generated:
    return generate(800, seed=8, start=START, hours=24)


def test_digest_has_the_days_figures_and_ten_worst(store: Store, data: Generated) -> None:
    digest = build_digest(Analyst(store), store, DAY.isoformat(), "https://sj.example")
    html, markdown = render_html(digest), render_markdown(digest)
    sonnet = [c for c in data.comparisons if c.arm == "sonnet"]
    assert f"{len(sonnet):,}" in html and f"| sonnet | {len(sonnet):,} |" in markdown
    worst = digest.worst[MIGRATION]
    assert len(worst) == 10
    assert worst[0]["kind"] in ("judged worse", "candidate refuses")
    links = re.findall(r'href="(https://sj\.example/pairs/[^"]+)"', html)
    assert len(links) == 10
    assert links[0].endswith(f"/{worst[0]['arm']}/{worst[0]['call_id']}")
    assert "<script" not in html
    assert "<svg" in html  # the verdict mix, drawn inline: the digest has no script
    assert "1. [" in markdown and "https://sj.example/pairs/" in markdown


def test_markdown_shows_text_as_written() -> None:
    assert markdown_text("a|b *c* <img src=x>\n[d](e)") == (
        "a\\|b \\*c\\* &lt;img src=x&gt; \\[d\\]\\(e\\)"
    )


def test_slack_gets_the_headline_and_never_shows_the_url(store: Store) -> None:
    digest = build_digest(Analyst(store), store, DAY.isoformat(), "https://sj.example")
    hook = Receiver()
    with serve(hook) as served:
        post_to_slack(f"{served.url}/services/T000/B000/XXXX", digest)
    assert hook.payloads == [{"text": slack_text(digest)}]
    assert (
        f"*<https://sj.example/migrations/{MIGRATION}?window={DAY}|{MIGRATION}>*"
        in (hook.payloads[0]["text"])
    )
    refusing = Receiver(status=400, answer=b"invalid_payload")
    with serve(refusing) as served, pytest.raises(ConfigError) as failed:
        post_to_slack(f"{served.url}/services/T000/B000/XXXX", digest)
    assert "HTTP 400: invalid_payload" in str(failed.value)
    assert "XXXX" not in str(failed.value)


def test_review_digest_command_writes_both_files_and_posts(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill = (
        "from datetime import datetime, UTC\n"
        "from judge.config import StoreSettings\n"
        "from judge.store.store import Store\n"
        "from tests.dashboards.generate import generate\n"
        f"s = Store.open(StoreSettings(url='chdb://{store}')); s.migrate()\n"
        f"start = datetime.fromisoformat('{START.isoformat()}')\n"
        "g = generate(300, seed=9, start=start, hours=24)\n"
        "s.insert_pairs(g.pairs, g.comparisons); s.close()\n"
    )
    subprocess.run([sys.executable, "-c", fill], check=True, timeout=120)
    hook = Receiver()
    with serve(hook) as served:
        config = tmp_path / "shadowjudge.yaml"
        config.write_text(
            f'store: "chdb://{store}"\n'
            "dashboards: {listen: '127.0.0.1:1', public_url: 'https://sj.example',"
            " digest_slack_env: SJ_T_SLACK}\n"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dashboards.command",
                "-c",
                str(config),
                "review",
                "digest",
                "--date",
                DAY.isoformat(),
                "--out",
                str(tmp_path / "out"),
                "--slack",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "SJ_T_SLACK": f"{served.url}/hook"},
        )
    assert done.returncode == 0, done.stderr
    assert "posted to Slack" in done.stdout
    assert (tmp_path / "out" / f"digest-{DAY}.html").read_text().startswith("<!doctype html>")
    assert "https://sj.example/pairs/" in (tmp_path / "out" / f"digest-{DAY}.md").read_text()
    assert len(hook.payloads) == 1
