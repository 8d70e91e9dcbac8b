"""`shadowjudge embeddings compare` and `embeddings report` as text: the report's dict (the
same one `--json` prints, `dashboards.analysis.embedding_report`) laid out in tables as
`shadowjudge report` prints them. A report from traffic adds `migration`, `arm` and
`reference` (the reference set read); one from files adds `embedded` (the cache's tally)."""

from __future__ import annotations

from typing import Any, TextIO

from dashboards.command.report import table


def _interval(figure: dict[str, Any]) -> str:
    return f"{figure['mean']:.3f} ({figure['low']:.3f}–{figure['high']:.3f})"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def render(report: dict[str, Any], out: TextIO) -> None:
    k = report["k"]
    where = f"{report['migration']} · arm {report['arm']} · " if "migration" in report else ""
    sizes = (
        f"{report['queries']:,} queries × {report['documents']:,} documents"
        if report.get("corpus", "documents") == "documents"
        else f"{report['queries']:,} queries, no documents"
    )
    models = (
        f"{report['from']} -> {report['to']}"
        if report["from"] or report["to"]
        else "no model pair stored yet"
    )
    out.write(f"{where}{models} · {sizes} · top {k}\n")
    if "embedded" in report:
        counts = report["embedded"]
        out.write(
            "embedded now / from the cache: "
            + ", ".join(
                f"{report[side]} {counts[key]['embedded']:,} / {counts[key]['cached']:,}"
                for side, key in (("from", "old"), ("to", "new"))
            )
            + "\n"
        )
    if "reference" in report:
        _reference(report["reference"], out)
    for note in report.get("notes", []):
        out.write(f"note: {note}\n")
    out.write("\n")
    if report.get("insufficient"):
        out.write(f"no verdict: {report['insufficient']}\n")
        return
    _agreement(report, out)
    _least(report, out)
    _thresholds(report, out)
    _adapter(report["adapter"], out)
    verdict = report["verdict"]
    out.write(f"\nverdict: {verdict['verdict']}\n")
    for reason in verdict["reasons"]:
        out.write(f"  - {reason}\n")


def _reference(reference: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"reference set: {reference['taken']:,} of the {reference['available']:,} texts stored"
        f" from the last {reference['retention_days']} days (reference_size {reference['size']:,},"
        " equal allocation across role × segment)\n"
    )
    rows = [["role", "segment", "stored", "taken"]]
    for stratum in reference["strata"]:
        rows.append(
            [
                stratum["role"],
                stratum["segment_key"] or "(none)",
                f"{stratum['available']:,}",
                f"{stratum['taken']:,}",
            ]
        )
    buffer: list[str] = []
    _left_table(rows, buffer)
    out.write("".join(f"  {line}" for line in buffer))


def _agreement(report: dict[str, Any], out: TextIO) -> None:
    k = report["k"]
    agreed = report["agreement"]
    columns = [("all", agreed), *sorted(agreed["segments"].items())]
    out.write("agreement (mean over queries, 95% bootstrap interval)\n")
    rows = [["figure", *[name for name, _ in columns]]]
    rows.append(["queries", *[str(c["overlap"]["n"]) for _, c in columns]])
    rows.append([f"overlap@{k}", *[_interval(c["overlap"]) for _, c in columns]])
    rows.append(["top-1 agreement", *[_interval(c["top1"]) for _, c in columns]])
    rows.append(["RBO (p=0.9, detail)", *[_interval(c["rbo"]) for _, c in columns]])
    table(rows, out)


def _least(report: dict[str, Any], out: TextIO) -> None:
    least = report["least_agreeing"]
    out.write(f"\nleast-agreeing queries ({len(least)}), old and new neighbours side by side\n")
    for item in least:
        said = f"  judge: new list {item['judge']}" if "judge" in item else ""
        out.write(
            f"\n{item['query_id']}  overlap {item['overlap']:.2f}  RBO {item['rbo']:.3f}{said}\n"
            f"  {' '.join(item['query'].split())[:100]}\n"
        )
        if item.get("judge") not in (None, "error") and item.get("judge_reason"):
            out.write(f"  judge's reason: {' '.join(item['judge_reason'].split())[:200]}\n")
        rows = [["rank", "old model", "new model"]]
        for rank, (old, new) in enumerate(zip(item["old"], item["new"], strict=True), start=1):
            rows.append([str(rank), f"{old['id']}  {old['text']}", f"{new['id']}  {new['text']}"])
        buffer: list[str] = []
        _left_table(rows, buffer)
        out.write("".join(f"  {line}" for line in buffer))
    judged = report.get("judge")
    if judged is not None:
        out.write(
            f"\njudge {judged['model']}: the new list serves better for {judged['better']},"
            f" worse for {judged['worse']}, neither for {judged['same']}"
            f" (a preference counts only when it survives swapping the lists)\n"
        )
        if "asked" in judged:
            out.write(f"  asked now: {judged['asked']}; the others were stored verdicts\n")
        for error in judged["errors"]:
            out.write(f"  not judged: {error['query_id']}: {error['error']}\n")


def _left_table(rows: list[list[str]], lines: list[str]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines[-1] += "\n"
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "\n")


def _thresholds(report: dict[str, Any], out: TextIO) -> None:
    rows = report["thresholds"]
    if not rows:
        how = (
            "embeddings.thresholds in the migration's settings"
            if "migration" in report
            else "--thresholds 0.75,0.8"
        )
        out.write(f"\nthresholds: none given ({how} maps your cut-offs)\n")
        return
    out.write(
        f"\nthresholds, mapped by quantile matching of top-{report['k']} neighbour scores"
        " (pass: share of neighbour scores at or above the cut-off)\n"
    )
    labelled = "labelled" in rows[0]
    header = ["old cut-off", "new cut-off", "pass before", "pass unchanged", "pass after"]
    if labelled:
        kept = rows[0]["labelled"]["kept"]
        header += [f"keeping {kept}", "precision old → new", "recall old → new"]
    table_rows = [header]
    for row in rows:
        cells = [
            f"{row['old']:g}",
            f"{row['new']:.4f}",
            _pct(row["pass_before"]),
            _pct(row["pass_unchanged"]),
            _pct(row["pass_after"]),
        ]
        if labelled:
            lab = row["labelled"]
            cells += [
                f"{lab['new']:.4f}" + ("" if lab["reached"] else " (not reached)"),
                f"{lab['old_precision']:.3f} → {lab['new_precision']:.3f}",
                f"{lab['old_recall']:.3f} → {lab['new_recall']:.3f}",
            ]
        table_rows.append(cells)
    table(table_rows, out)
    if labelled:
        out.write(f"  (labelled: {rows[0]['labelled']['pairs']} pairs from --labels)\n")


def _adapter(adapter: dict[str, Any], out: TextIO) -> None:
    out.write("\nadapter viability (map new query vectors into the old index)\n")
    if not adapter["measured"]:
        out.write(f"  {adapter['reason']}\n")
        return
    for kind in ("ridge", "procrustes"):
        found = adapter[kind]
        out.write(
            f"  {kind:<10} keeps {_interval(found['retention'])} of the old top-10 neighbours"
            f" on {found['held_out_queries']} held-out queries\n"
        )
    out.write(f"  fitted on {adapter['train_pairs']:,} pairs\n")
    if "written" in adapter:
        out.write(f"  {adapter['written']['kind']} map written to {adapter['written']['path']}\n")
