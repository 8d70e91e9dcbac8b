"""`shadowjudge embeddings reembed` and `thresholds --scan`, against the fake OpenAI endpoint
serving the offline models (wordllama; e5 once, on a small sample: it is slow)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboards.command.main import main
from simulation.embeddings import WordLlamaModel
from simulation.providers import OpenAIFake, Served

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "data" / "embeddings" / "corpus.jsonl.gz"
KEY_ENV = "SJ_TEST_EMBEDDINGS_KEY"


@pytest.fixture
def config(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    path = tmp_path / "shadowjudge.yaml"
    path.write_text(
        f"providers:\n  local:\n    kind: openai\n    base_url: {served.url}\n"
        f"    api_key_env: {KEY_ENV}\n"
        "runner:\n  limits:\n    local: {concurrency: 4}\n",
        encoding="utf-8",
    )
    return path


def sentences(count: int) -> list[str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        base = [json.loads(line)["text"] for line in lines]
    return [f"{base[i % len(base)]} [{i}]" for i in range(count)]


def write_corpus(path: Path, texts: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"doc-{i}", "text": t}) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    return path


def reembed_args(config: Path, corpus: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "-c", str(config), "embeddings", "reembed", "--corpus", str(corpus), "--out", str(out),
        "--cache", str(cache), "--provider", "local", "--model", "wordllama-l2",
        "--version", "0.4.0", *extra,
    ]  # fmt: skip


def read_output(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def embedded_inputs(fake: OpenAIFake, since: int) -> list[str]:
    return [
        text
        for request in list(fake.requests)[since:]
        if request.path == "/v1/embeddings"
        for text in request.json()["input"]
    ]


def test_reembed_writes_every_id_once_tagged_and_a_second_run_embeds_nothing(
    fake: OpenAIFake, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = sentences(300)
    corpus = write_corpus(tmp_path / "corpus.jsonl", texts)
    out, cache = tmp_path / "out" / "vectors.jsonl", tmp_path / "cache.sqlite3"
    before = len(fake.requests)
    assert main(reembed_args(config, corpus, out, cache, "--batch-size", "64")) == 0
    summary = capsys.readouterr().out
    assert "300 written now: 300 embedded, 0 from the cache; 0 already there" in summary
    lines = read_output(out)
    assert [line["id"] for line in lines] != []
    assert sorted(str(line["id"]) for line in lines) == sorted(f"doc-{i}" for i in range(300))
    assert {(line["model"], line["version"]) for line in lines} == {("wordllama-l2", "0.4.0")}
    by_id = {line["id"]: np.asarray(line["vector"], dtype=np.float32) for line in lines}
    expected, _ = WordLlamaModel().embed(texts)
    got = np.stack([by_id[f"doc-{i}"] for i in range(300)])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # vectors are sensitive
    meta = json.loads((out.parent / "vectors.jsonl.meta.json").read_text(encoding="utf-8"))
    assert meta["model"] == "wordllama-l2" and meta["version"] == "0.4.0"
    assert len(embedded_inputs(fake, before)) == 300

    middle = len(fake.requests)
    assert main(reembed_args(config, corpus, out, cache)) == 0
    assert "0 written now" in capsys.readouterr().out
    assert len(fake.requests) == middle
    # another output for the same model: every vector from the cache, none embedded again
    other = tmp_path / "again.jsonl"
    assert main(reembed_args(config, corpus, other, cache)) == 0
    assert "300 written now: 0 embedded, 300 from the cache" in capsys.readouterr().out
    assert len(fake.requests) == middle


def test_a_torn_last_line_is_cut_and_its_ids_written_again(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", sentences(50))
    out, cache = tmp_path / "vectors.jsonl", tmp_path / "cache.sqlite3"
    assert main(reembed_args(config, corpus, out, cache)) == 0
    whole = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(whole[:20]) + whole[20][: len(whole[20]) // 2])  # killed mid-write
    assert main(reembed_args(config, corpus, out, cache)) == 0
    assert "30 written now: 0 embedded, 30 from the cache; 20 already there" in (
        capsys.readouterr().out
    )
    ids = [line["id"] for line in read_output(out)]
    assert len(ids) == 50 and len(set(ids)) == 50


def test_parquet_corpora_are_read(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "text": ["one", "two", "three"]}), corpus)
    out = tmp_path / "vectors.jsonl"
    assert main(reembed_args(config, corpus, out, tmp_path / "c.sqlite3")) == 0
    assert [line["id"] for line in read_output(out)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"id": "a", "text": "x"}\n{"id": "b"}\n', "corpus.jsonl:2: no \"text\" (id 'b')"),
        ('{"text": "x"}\n', 'corpus.jsonl:1: no "id"'),
        (
            '{"id": "a", "text": "x"}\n\n{"id": "a", "text": "y"}\n',
            "corpus.jsonl:3: duplicate id 'a' (first on line 1)",
        ),  # noqa: E501
        ('{"id": "a", "text": ""}\n', 'corpus.jsonl:1: "text" must be a non-empty string'),
        ('{"id": "a", "text": "x"}\nnot json\n', "corpus.jsonl:2: not JSON"),
    ],
)
def test_bad_input_is_an_error_naming_the_line_before_anything_is_embedded(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lines: str,
    message: str,
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(lines, encoding="utf-8")
    out = tmp_path / "vectors.jsonl"
    assert main(reembed_args(config, corpus, out, tmp_path / "c.sqlite3")) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_resuming_with_another_model_spec_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", sentences(5))
    out, cache = tmp_path / "vectors.jsonl", tmp_path / "c.sqlite3"
    assert main(reembed_args(config, corpus, out, cache)) == 0
    assert main(reembed_args(config, corpus, out, cache, "--dimensions", "64")) == 2
    assert "holds vectors of provider='local', model='wordllama-l2'" in capsys.readouterr().err
    assert main(reembed_args(config, corpus, out, cache, "--provider", "nowhere")) == 2
    assert "--provider nowhere: no provider of that name" in capsys.readouterr().err


def test_reembed_sends_its_input_type_and_records_it_in_the_meta_file(
    fake: OpenAIFake, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", sentences(5))
    out, cache = tmp_path / "vectors.jsonl", tmp_path / "c.sqlite3"
    before = len(fake.requests)
    assert main(reembed_args(config, corpus, out, cache, "--input-type", "document")) == 0
    bodies = [r.json() for r in list(fake.requests)[before:] if r.path == "/v1/embeddings"]
    assert bodies and {b["input_type"] for b in bodies} == {"document"}
    meta = json.loads((tmp_path / "vectors.jsonl.meta.json").read_text(encoding="utf-8"))
    assert meta["input_type"] == "document"
    # Resuming without it is another model spec; an output made without one has no such key.
    assert main(reembed_args(config, corpus, out, cache)) == 2
    assert "input_type='document'" in capsys.readouterr().err
    plain = tmp_path / "plain.jsonl"
    assert main(reembed_args(config, corpus, plain, cache)) == 0
    assert "input_type" not in json.loads(
        (tmp_path / "plain.jsonl.meta.json").read_text(encoding="utf-8")
    )


def test_reembed_killed_halfway_and_restarted_embeds_every_id_once(
    fake: OpenAIFake, config: Path, tmp_path: Path
) -> None:
    """20,000 texts; SIGKILL once half the output is written; the restart completes it."""
    total = 20_000
    corpus = write_corpus(tmp_path / "corpus.jsonl", sentences(total))
    out, cache = tmp_path / "vectors.jsonl", tmp_path / "cache.sqlite3"
    command = [
        sys.executable,
        "-m",
        "dashboards.command",
        *reembed_args(config, corpus, out, cache),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = len(fake.requests)
    started = time.perf_counter()
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    written = 0
    while written < total // 2:
        assert first.poll() is None, "finished before it could be killed"
        time.sleep(0.02)
        written = out.read_bytes().count(b"\n") if out.exists() else 0
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = out.read_bytes().count(b"\n")
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - started
    assert second.returncode == 0, second.stderr.decode()
    ids = [line["id"] for line in read_output(out)]
    assert Counter(ids) == Counter(f"doc-{i}" for i in range(total))
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM vectors").fetchone() == (total,)
    sent = Counter(embedded_inputs(fake, before))
    resent = sum(n - 1 for n in sent.values())
    # only a batch in flight at the kill (never received, so never cached) can be sent again
    assert len(sent) == total and resent <= 4 * 128
    summary = second.stdout.decode()
    print(  # noqa: T201
        f"\nreembed {total} texts: killed at {killed_at} lines, resent {resent};"
        f" {total / elapsed:.0f} texts/s overall ({elapsed:.1f} s); restart: {summary.strip()}"
    )


FIXTURE = """
SIMILARITY_THRESHOLD = 0.8
MAX_DISTANCE: float = 0.35
retries = 0.5


def search(index, query, min_score=0.7, *, limit=10):
    hits = index.query(query, score_threshold=0.75, top_k=limit)
    good = [h for h in hits if h.score > 0.82]
    near = [h for h in hits if h["distance"] < 0.3]
    keep = [h for h in hits if 0.6 <= cosine_similarity(h.vector, query)]
    count = [h for h in hits if len(h.text) > 0.5]
    return good, near, keep, count, {"similarity_cutoff": 0.9, "name": 0.1}
"""


@pytest.fixture
def code_tree(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "search.py").write_text(FIXTURE, encoding="utf-8")
    (root / "pkg" / "broken.py").write_text("def (:\n", encoding="utf-8")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "dep.py").write_text("score_threshold = 0.5\n", encoding="utf-8")
    return root


EXPECTED = [
    (2, "similarity", 0.8),
    (3, "distance", 0.35),
    (7, "similarity", 0.7),
    (8, "similarity", 0.75),
    (9, "similarity", 0.82),
    (10, "distance", 0.3),
    (11, "similarity", 0.6),
    (13, "similarity", 0.9),
]


def test_thresholds_scan_lists_cutoffs_with_file_and_line_only_without_a_mapping(
    code_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["embeddings", "thresholds", "--scan", str(code_tree), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    found = [(int(c["where"].rsplit(":", 1)[1]), c["kind"], c["value"]) for c in shown["cutoffs"]]
    assert found == EXPECTED
    assert all("recalibrated" not in c for c in shown["cutoffs"])
    assert shown["mapping"] is None
    assert [Path(u["path"]).name for u in shown["unreadable"]] == ["broken.py"]
    assert main(["embeddings", "thresholds", "--scan", str(code_tree)]) == 0
    text = capsys.readouterr().out
    assert "no mapping, so listed only" in text
    assert f"{code_tree / 'pkg' / 'search.py'}:9  similarity 0.82  h.score > 0.82" in text


def test_thresholds_beside_their_values_recalibrated_by_a_mapping_file(
    code_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = np.linspace(0.0, 1.0, 1001)
    mapping = {"from_model": "a@1", "to_model": "b@1", "old_scores": list(old)}
    mapping["new_scores"] = list(0.5 + old / 2)  # the new model: every score halfway to 1
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    args = ["embeddings", "thresholds", "--scan", str(code_tree), "--mapping", str(path)]
    assert main([*args, "--json"]) == 0
    rows = {
        int(c["where"].rsplit(":", 1)[1]): c for c in json.loads(capsys.readouterr().out)["cutoffs"]
    }  # noqa: E501
    assert rows[2]["recalibrated"] == pytest.approx(0.9, abs=1e-3)
    assert rows[2]["passes_before"] == pytest.approx(rows[2]["passes_after"], abs=1e-3)
    assert rows[2]["passes_unchanged"] > rows[2]["passes_before"]
    # a cosine distance d is the similarity 1 - d: 0.3 -> similarity 0.7 -> 0.85 -> 0.15
    assert rows[10]["recalibrated"] == pytest.approx(0.15, abs=1e-3)
    assert main(args) == 0
    assert "similarity 0.8 -> 0.9  passes 20.1% / 40.1% / 20.1%" in capsys.readouterr().out
    path.write_text(json.dumps({**mapping, "new_scores": []}), encoding="utf-8")
    assert main(args) == 2
    assert "not a score mapping" in capsys.readouterr().err


def test_thresholds_mapped_from_a_sample_embedded_by_both_models(
    config: Path, code_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wordllama -> e5 on 40 texts: e5's scores run high, so 0.8 must move up."""
    sample = write_corpus(tmp_path / "sample.jsonl", sentences(40))
    saved = tmp_path / "saved.json"
    args = [
        "-c", str(config), "embeddings", "thresholds", "--scan", str(code_tree), "--json",
        "--sample", str(sample), "--from-model", "local:wordllama-l2",
        "--to-model", "local:multilingual-e5-small", "--to-prefix", "query: ",
        "--cache", str(tmp_path / "c.sqlite3"), "--save-mapping", str(saved),
    ]  # fmt: skip
    assert main(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mapping"] == {
        "from_model": "wordllama-l2@wordllama-l2",
        "to_model": "multilingual-e5-small@multilingual-e5-small",
    }
    row = next(c for c in shown["cutoffs"] if c["value"] == 0.6)
    assert row["passes_unchanged"] == 1.0  # e5's neighbour scores are all above 0.6
    assert 0.8 < row["recalibrated"] < 1.0
    assert row["passes_after"] == pytest.approx(row["passes_before"], abs=0.01)
    assert len(json.loads(saved.read_text(encoding="utf-8"))["new_scores"]) == 400


def test_other_languages_are_scanned_by_regular_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "search.ts").write_text(
        "const SIMILARITY_THRESHOLD = 0.8;\n"
        "const results = hits.filter((h) => h.score >= 0.72);\n"
        'if (doc["distance"] < 0.25) { keep(doc) }\n'
        "const opts = { minScore: 0.65, limit: 10, ratio: 0.5 };\n"
        "if (0.9 > cosineSimilarity(a, b)) return;\n"
        "const half = items.length > 0.5;\n",
        encoding="utf-8",
    )
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("x.score > 0.5\n", encoding="utf-8")
    assert main(["embeddings", "thresholds", "--scan", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    found = [(int(c["where"].rsplit(":", 1)[1]), c["kind"], c["value"]) for c in shown["cutoffs"]]
    assert found == [
        (1, "similarity", 0.8),
        (2, "similarity", 0.72),
        (3, "distance", 0.25),
        (4, "similarity", 0.65),
        (5, "similarity", 0.9),
    ]
