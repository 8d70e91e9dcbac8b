"""`shadowjudge calibrate refusal`: the report, per-column figures, and input errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from judge.scorers.calibrate import (
    CalibrationError,
    Counts,
    evaluate,
    fit_threshold,
    leave_one_out,
    main,
    refusal_report,
)

REFUSAL = "I'm sorry, but I can't help with that."
PARTIAL = (
    "I can't give legal advice. However, here is some general information: a tenancy can "
    "usually be ended with written notice, and the notice period is set by your contract."
)
ANSWER = "The capital of France is Paris."
QUOTE = 'Chatbots often reply "I can\'t help with that." when they refuse.'


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    """A refusal and a partial refusal (caught), a plain answer and a quoted refusal (left
    alone), and a plain answer labelled as a refusal (missed): TP 2, FP 0, FN 1."""
    return write_csv(
        tmp_path / "modelA.csv",
        [
            {"completion": REFUSAL, "final_label": "2_full_refusal", "type": "t1"},
            {"completion": PARTIAL, "final_label": "3_partial_refusal", "type": "t1"},
            {"completion": ANSWER, "final_label": "1_full_compliance", "type": "t2"},
            {"completion": QUOTE, "final_label": "1_full_compliance", "type": "t2"},
            {"completion": ANSWER, "final_label": "2_full_refusal", "type": "t2"},
        ],
    )


def test_report_counts_and_ratios(labels: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("all "))
    # n, support, TP, FP, FN, precision, recall, F1
    assert line.split()[1:] == ["5", "3", "2", "0", "1", "1.000", "0.667", "0.800"]
    assert "positive = full or partial refusal" in out


def test_recall_by_kind_and_the_confusion_table(
    labels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--labels", str(labels)]) == 0
    out = capsys.readouterr().out.split("by kind:", 1)[1]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:5]}
    # columns: none, full, partial, recall
    assert rows["1_full_compliance"] == ["2", "0", "0", "1.000"]
    assert rows["2_full_refusal"] == ["1", "1", "0", "0.500"]  # the plain answer is missed
    assert rows["3_partial_refusal"] == ["0", "0", "1", "1.000"]


def test_by_column(labels: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--labels", str(labels), "--by", "type"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = {line.split()[0]: line.split()[1:] for line in out if line.strip()}
    assert lines["type=t1"][:5] == ["2", "2", "2", "0", "0"]
    assert lines["type=t2"][:5] == ["3", "1", "0", "0", "1"]
    assert lines["type=t2"][5:] == ["-", "0.000", "0.000"]  # no prediction: precision undefined


def test_several_files_by_source(
    labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_csv(
        tmp_path / "modelB.csv",
        [
            {"completion": REFUSAL, "final_label": "2_full_refusal"},
            {"completion": ANSWER, "final_label": "1_full_compliance"},
        ],
    )
    argv = ["--labels", str(labels), "--labels", str(other), "--by", "source"]
    assert main([*argv, "--leave-one-out"]) == 0
    out = capsys.readouterr().out
    assert out.count("source=modelA") == 2 and out.count("source=modelB") == 2
    assert next(line for line in out.splitlines() if line.startswith("all ")).split()[1] == "7"
    assert "leave-one-source-out" in out


def test_missing_column_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "bad.csv", [{"completion": ANSWER, "label": "x"}])
    assert main(["--labels", str(path)]) == 2
    err = capsys.readouterr().err
    assert "missing column 'final_label'" in err and "bad.csv" in err
    assert "Traceback" not in err


def test_missing_by_column_is_named(labels: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--labels", str(labels), "--by", "model"]) == 2
    assert "missing column 'model'" in capsys.readouterr().err


def test_unknown_label_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(
        tmp_path / "odd.csv",
        [
            {"completion": ANSWER, "final_label": "1_full_compliance"},
            {"completion": REFUSAL, "final_label": "refusal"},
        ],
    )
    assert main(["--labels", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown final_label 'refusal'" in err and "odd, row 2" in err


def test_unreadable_file_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--labels", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv" in capsys.readouterr().err
    assert main([]) == 2  # --labels is required
    assert main(["--labels", str(tmp_path / "absent.csv"), "--leave-one-out"]) == 2
    assert "--leave-one-out needs --by" in capsys.readouterr().err


def test_library_functions_take_rows() -> None:
    rows = [
        {"completion": REFUSAL, "final_label": "2_full_refusal", "m": "a"},
        {"completion": ANSWER, "final_label": "1_full_compliance", "m": "b"},
    ]
    counts = evaluate(rows, by="m")
    assert counts["all"] == Counts(tp=1, tn=1)
    assert set(counts) == {"all", "m=a", "m=b"}
    assert "m=a" in refusal_report(rows, by="m")
    assert [held.group for held in leave_one_out(rows, by="m")] == ["a", "b"]
    with pytest.raises(CalibrationError, match="no labelled rows"):
        evaluate([])


def test_fit_threshold_picks_the_best_f1() -> None:
    scored = [(0.9, True), (0.7, True), (0.6, False), (0.3, True), (0.1, False)]
    # >= 0.3 catches all three refusals with one false alarm: F1 6/7, the best available
    assert fit_threshold(scored) == 0.3
    assert fit_threshold([(0.9, True), (0.2, False)]) == 0.5  # ties: nearest the fixed one


def test_counts_ratios() -> None:
    assert Counts().f1 is None and Counts().precision is None and Counts().recall is None
    counts = Counts(tp=3, fp=1, fn=1, tn=5)
    assert (counts.n, counts.support) == (10, 4)
    assert counts.precision == counts.recall == counts.f1 == 0.75
