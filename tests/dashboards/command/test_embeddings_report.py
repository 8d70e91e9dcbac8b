"""`shadowjudge embeddings report --migration NAME`: the store read directly when nothing
answers on the dashboards address, the same report through a running app's API otherwise,
`--judge` asked here, and bad input refused naming the flag (exit 2)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from dashboards.analysis.embedding_migration import EmbeddingMigration
from dashboards.command.main import main
from dashboards.web.app import WebConfig, create_app
from judge.embeddings import Adapter
from judge.store.store import Store
from simulation.providers import FakeReply, OpenAIFake, Served
from tests.browser import serve
from tests.chdb import database_url
from tests.dashboards.embedding_traffic import (
    OfflineVectors,
    migration_rows,
    reference_store,
    synthetic_rows,
)
from tests.judge.embeddings.corpus import E5, WORDLLAMA

KEY_ENV = "SJ_TEST_EMBEDDINGS_REPORT_KEY"


@pytest.fixture(scope="module")
def url(chdb_dir: Path) -> Iterator[str]:
    with database_url(chdb_dir, "e") as made:
        yield made


@pytest.fixture(scope="module")
def store(url: str, offline_vectors: OfflineVectors) -> Iterator[Store]:
    rows = migration_rows(offline_vectors, "cross", "e5", WORDLLAMA, E5)
    rows += synthetic_rows("rotated", 100, 2100, arm="b")
    with reference_store(url, rows) as opened:
        yield opened


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config(
    url: str, store: Store, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    path = tmp_path / "shadowjudge.yaml"
    path.write_text(
        f'store: "{url}"\n'
        f'dashboards: {{listen: "127.0.0.1:{free_port()}"}}\n'
        f"providers:\n  local:\n    kind: openai\n    base_url: {served.url}\n"
        f"    api_key_env: {KEY_ENV}\n"
        "judge:\n  provider: local\n  model: judge-model\n"
        "migrations:\n"
        "  - name: cross\n"
        "    match: {api: [openai.embeddings]}\n"
        "    embeddings: {thresholds: [0.5, 0.75]}\n"
        "    arms:\n"
        "      - {name: e5, provider: local, model: multilingual-e5-small,"
        " embedding: {query_prefix: 'query: ', document_prefix: 'passage: '}}\n"
        "      - {name: other, provider: local, model: wordllama-l2}\n"
        "  - name: quiet\n"
        "    match: {api: [openai.embeddings]}\n"
        "    embeddings: {}\n"
        "    arms: [{name: e5, provider: local, model: multilingual-e5-small}]\n"
        "  - name: rotated\n"
        "    match: {api: [openai.embeddings]}\n"
        "    embeddings: {}\n"
        "    arms: [{name: b, provider: local, model: new}]\n"
        "  - name: chat\n"
        "    arms: [{name: b, provider: local, model: gpt-4o-mini}]\n",
        encoding="utf-8",
    )
    return path


def report(
    config: Path, capsys: pytest.CaptureFixture[str], *extra: str, migration: str = "cross"
) -> Any:
    argv = ["-c", str(config), "embeddings", "report", "--migration", migration, *extra]
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_from_the_store_in_text_and_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = report(config, capsys, "--least", "2")
    assert found["verdict"]["verdict"] == "re-embed and retune"
    assert found["migration"] == "cross" and found["arm"] == "e5"
    assert [t["old"] for t in found["thresholds"]] == [0.5, 0.75]
    assert len(found["least_agreeing"]) == 2 and "judge" not in found
    assert main(["-c", str(config), "embeddings", "report", "--migration", "cross"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"cross · arm e5 · {WORDLLAMA}@{WORDLLAMA} -> {E5}@{E5} · 60 queries")
    for line in (
        "reference set: 260 of the 260 texts stored from the last 30 days (reference_size"
        " 5,000, equal allocation across role × segment)",
        "overlap@10",
        "least-agreeing queries (10), old and new neighbours side by side",
        "thresholds, mapped by quantile matching of top-10 neighbour scores",
        "verdict: re-embed and retune",
        "(read from chdb://",
    ):
        assert line in text, line


def test_no_traffic_yet_is_no_verdict(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(config), "embeddings", "report", "--migration", "quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("quiet · arm e5 · no model pair stored yet · 0 queries")
    assert "reference set: 0 of the 0 texts stored from the last 30 days" in text
    assert (
        "no verdict: 0 query texts in the reference set; at least 20 are needed for a verdict"
    ) in text
    assert "verdict:" not in text.replace("no verdict:", "")
    found = report(config, capsys, "--judge", migration="quiet")  # nothing to judge
    assert found["verdict"] is None and "judge" not in found


def test_through_a_running_app_and_with_the_judge(
    config: Path, store: Store, fake: OpenAIFake, capsys: pytest.CaptureFixture[str]
) -> None:
    migration = EmbeddingMigration("cross", ("e5", "other"), thresholds=(0.5, 0.75))
    app = create_app(lambda: store, WebConfig(embeddings={"cross": migration}))  # type: ignore[arg-type, return-value]
    direct = report(config, capsys)
    with serve(app) as base:
        via = report(config, capsys, "--url", base)
        assert via == direct  # the API's object is what --json prints

        # a judge that always picks the first list: a position bias, which the swap cancels
        asked: list[int] = []
        fake.responder = counting(asked, '{"verdict": "A", "reason": "x"}')
        try:
            judged = report(config, capsys, "--url", base, "--judge", "--least", "3")
            # the verdicts went to the app's store: its API shows them, and asking again asks
            # nothing
            shown = report(config, capsys, "--url", base, "--least", "3")
            again = report(config, capsys, "--url", base, "--judge", "--least", "3")
        finally:
            fake.responder = None
            forget_verdicts(store)
    split = judged["judge"]
    assert split["better"] + split["worse"] + split["same"] + len(split["errors"]) == 3
    assert split["same"] == 3 and split["model"].endswith("judge-model")
    assert split["asked"] == 3 and len(asked) == 6
    assert any("The judge found the new lists" in r for r in judged["verdict"]["reasons"])
    assert shown["judge"]["same"] == 3 and shown["verdict"] == judged["verdict"]
    assert [i["judge"] for i in shown["least_agreeing"]] == ["same"] * 3
    assert again["judge"]["asked"] == 0 and len(asked) == 6


def counting(asked: list[int], answer: str) -> Any:
    """A judge that always gives `answer`, counting the questions in `asked`."""

    def respond(body: dict[str, Any], headers: Any) -> FakeReply:
        asked.append(1)
        return FakeReply(text=answer)

    return respond


def forget_verdicts(store: Store) -> None:
    """The module's store is shared: a test that stores list verdicts removes them."""
    with store._call("test: forget list verdicts") as ch:  # noqa: SLF001
        ch.command("TRUNCATE TABLE embedding_list_verdicts")


def test_judge_from_the_store_keeps_its_verdicts_for_the_page_and_api(
    config: Path, store: Store, fake: OpenAIFake, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[int] = []
    fake.responder = counting(asked, '{"verdict": "same", "reason": "both serve it"}')
    migrations = {"rotated": EmbeddingMigration("rotated", ("b",))}
    api = TestClient(create_app(lambda: store, WebConfig(embeddings=migrations)))
    try:
        assert "judge" not in api.get("/api/v1/migrations/rotated/embeddings?least=3").json()
        first = report(config, capsys, "--judge", "--least", "3", migration="rotated")
        again = report(config, capsys, "--judge", "--least", "3", migration="rotated")
        shown = api.get("/api/v1/migrations/rotated/embeddings?least=3").json()
        page = api.get("/migrations/rotated/embeddings?least=3").text
    finally:
        fake.responder = None
        forget_verdicts(store)
    assert first["judge"]["asked"] == 3 and first["judge"]["same"] == 3 and len(asked) == 6
    assert again["judge"]["asked"] == 0 and again["judge"]["same"] == 3 and len(asked) == 6
    assert shown["judge"] == {key: first["judge"][key] for key in shown["judge"]}
    assert shown["verdict"] == first["verdict"]
    assert [i["judge_reason"] for i in shown["least_agreeing"]] == ["both serve it"] * 3
    assert "judge's reason <small>(local/judge-model)</small>: both serve it" in page


def labels_file(path: Path, least: list[dict[str, Any]]) -> tuple[Path, int]:
    """Relevance labels on the least-agreeing queries: each old top result relevant, each new
    last result not (by text for the query, by the report's id for the documents), and one pair
    whose document is not in the reference set."""
    lines = []
    for item in least:
        lines.append({"query": item["query"], "document_id": item["old"][0]["id"],
                      "relevant": True})  # fmt: skip
        lines.append({"query_id": item["query_id"], "document_id": item["new"][-1]["id"],
                      "relevant": False})  # fmt: skip
    lines.append({"query_id": least[0]["query_id"], "document_id": "0" * 12, "relevant": True})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path, len(lines) - 1


def test_labels_give_the_cut_off_keeping_precision_from_the_store_and_the_api(
    config: Path, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    least = report(config, capsys, "--least", "10")["least_agreeing"]
    path, in_set = labels_file(tmp_path / "labels.jsonl", least)
    direct = report(config, capsys, "--labels", str(path))
    assert direct["labels"] == {
        "given": in_set + 1,
        "in_reference_set": in_set,
        "keep": "precision",
    }
    assert f"1 of the {in_set + 1:,} labelled pairs are left out" in " ".join(direct["notes"])
    for row in direct["thresholds"]:
        labelled = row["labelled"]
        assert labelled["pairs"] == in_set and labelled["kept"] == "precision"
        assert 0 <= labelled["old_precision"] <= 1 and 0 <= labelled["new_precision"] <= 1
    recall = report(config, capsys, "--labels", str(path), "--keep", "recall")
    assert {row["labelled"]["kept"] for row in recall["thresholds"]} == {"recall"}
    migration = EmbeddingMigration("cross", ("e5", "other"), thresholds=(0.5, 0.75))
    app = create_app(lambda: store, WebConfig(embeddings={"cross": migration}))  # type: ignore[arg-type, return-value]
    with serve(app) as base:
        via = report(config, capsys, "--url", base, "--labels", str(path))
        plain = report(config, capsys, "--url", base)
    assert via == direct  # the hashes went, the same report came back
    assert "labelled" not in plain["thresholds"][0] and "labels" not in plain
    assert main(["-c", str(config), "embeddings", "report", "--migration", "cross",
                 "--labels", str(path)]) == 0  # fmt: skip
    assert f"(labelled: {in_set} pairs from --labels)" in capsys.readouterr().out


def test_labels_naming_no_text_are_refused_with_the_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"query": "a", "document": "b", "relevant": true}\n{"query": "a"}\n')
    argv = ["-c", str(config), "embeddings", "report", "--migration", "cross"]
    assert main([*argv, "--labels", str(path)]) == 2
    assert f"--labels {path}:2: expected" in capsys.readouterr().err
    path.write_text('{"query": "a", "relevant": true}\n')
    assert main([*argv, "--labels", str(path)]) == 2
    assert f"--labels {path}:1: no document (a text) nor document_id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--migration", "nope"),
            "--migration nope: no migration of that name; known: cross, quiet, rotated, chat",
        ),
        (
            ("--migration", "chat"),
            "--migration chat: not an embedding migration (it has no embeddings: section)",
        ),
        (
            ("--migration", "cross", "--arm", "b"),
            "--arm b: migration 'cross' has no arm 'b'; its arms: e5, other",
        ),
        (("--migration", "cross", "--least", "0"), "--least must be at least 1"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(
    config: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    assert main(["-c", str(config), "embeddings", "report", *extra]) == 2
    assert message in capsys.readouterr().err


def test_the_dashboards_know_the_settings_embedding_migrations(config: Path) -> None:
    from dashboards.command.serve import web_config
    from dashboards.settings import load_settings

    found = web_config(load_settings(config)).embeddings
    assert found == {
        "cross": EmbeddingMigration("cross", ("e5", "other"), thresholds=(0.5, 0.75)),
        "quiet": EmbeddingMigration("quiet", ("e5",)),
        "rotated": EmbeddingMigration("rotated", ("b",)),
    }  # "chat" has no embeddings: section


def test_adapter_out_from_the_store_and_through_the_api(
    config: Path, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    direct = tmp_path / "direct.npz"
    found = report(config, capsys, "--adapter-out", str(direct), migration="rotated")
    adapter = found["adapter"]
    assert adapter["measured"] and adapter["written"]["path"] == str(direct)
    best = max(("ridge", "procrustes"), key=lambda k: adapter[k]["retention"]["mean"])
    saved = Adapter.load(direct)
    assert saved.kind == adapter["written"]["kind"] == best
    assert saved.weight.shape == (24, 24) and saved.old_model == "old@old"
    # through a running app: the server fits it on its own rows and sends the map
    migrations = {"rotated": EmbeddingMigration("rotated", ("b",))}
    app = create_app(lambda: store, WebConfig(embeddings=migrations))  # type: ignore[arg-type, return-value]
    via = tmp_path / "via.npz"
    with serve(app) as base:
        found = report(
            config, capsys, "--url", base, "--adapter-out", str(via), migration="rotated"
        )
    assert found["adapter"]["written"] == {"path": str(via), "kind": best}
    assert np.array_equal(Adapter.load(via).weight, saved.weight)
    # too few pairs: refused naming the flag, nothing written
    refused = tmp_path / "none.npz"
    argv = ["-c", str(config), "embeddings", "report", "--migration", "cross"]
    assert main([*argv, "--adapter-out", str(refused)]) == 2
    assert f"--adapter-out {refused}: not written: fewer than 2,000 pairs" in (
        capsys.readouterr().err
    )
    assert not refused.exists()
