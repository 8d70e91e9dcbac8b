"""`shadowjudge embeddings reembed` and `shadowjudge embeddings thresholds --scan PATH`.

**reembed** is the backfill half of a dual-write migration: it embeds every text of a corpus
with the candidate model and writes the vectors the new index loads. A backfill is not a
migration's arm, so the model is given on the command line (`--provider NAME --model NAME
[--version V] [--dimensions N] [--prefix 'passage: '] [--input-type document]`, the provider
from the settings' `providers`, within its `runner.limits`). Texts go through the embedding cache
(`mirror.embeddings`), so a text is embedded once per model however often the run is
restarted; the output is appended a batch at a time with an fsync (`dashboards.command.corpus`),
so a run killed at any point (SIGKILL included) resumes where it stopped when started again
with the same arguments. A progress bar (tqdm: count, rate, ETA) goes to stderr on a terminal;
the summary line goes to stdout.

**thresholds --scan** lists the similarity cut-offs hard-coded in a code base
(`dashboards.command.threshold_scan`) with file and line. With a mapping — `--mapping FILE`
(JSON: both models' top-10 neighbour scores on a sample, as `--save-mapping` writes it), or
`--sample FILE --from-model P:M --to-model P:M` (a corpus embedded with both models through
the cache) — each is printed beside its value recalibrated by quantile matching
(`judge.embeddings.thresholds.map_threshold`) and the share of neighbour scores it passes
before, unchanged and after. Without one it only lists them: a recalibrated value needs the
two models' score distributions, and none is made up. Distance cut-offs are mapped as cosine
distances (1 - similarity), which the output says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dashboards.command import embeddings_compare, embeddings_report
from dashboards.command.corpus import CorpusError, Id, VectorOutput, check_corpus, read_corpus
from dashboards.command.embedding_models import (
    cache_arguments,
    cached_embeddings,
    check_provider,
    model_spec,
)
from dashboards.command.threshold_scan import Cutoff, scan
from mirror.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from dashboards.settings import Settings
    from mirror.embeddings import CachedEmbeddings, EmbeddingModel

NEIGHBOURS = 10


def add_parser(commands: Any) -> None:
    embeddings = commands.add_parser(
        "embeddings",
        help="embedding migrations: `embeddings report`, `embeddings compare`,"
        " `embeddings reembed`, `embeddings thresholds`",
    )
    actions = embeddings.add_subparsers(dest="embeddings_command", required=True)
    reembed = actions.add_parser(
        "reembed",
        help="embed a corpus with the candidate model, resumably, through the cache",
        description="Embed every text of a corpus (JSONL or Parquet of id + text) with the"
        " candidate model and append the vectors to --out (JSONL: id, model, version, vector)."
        " Killed and started again with the same arguments, it resumes and embeds nothing"
        " twice.",
    )
    reembed.add_argument("--corpus", type=Path, required=True, help="JSONL or .parquet")
    reembed.add_argument("--out", type=Path, required=True, help="the vectors (JSONL)")
    reembed.add_argument("--provider", required=True, help="a provider of the settings")
    reembed.add_argument("--model", required=True)
    reembed.add_argument("--version", default="", help="version label (default: the model)")
    reembed.add_argument("--dimensions", type=int, default=None)
    reembed.add_argument("--prefix", default="", help="put before every text, e.g. 'passage: '")
    reembed.add_argument(
        "--input-type", default="", help="sent as the request's input_type, e.g. 'document'"
    )
    reembed.add_argument("--no-normalize", action="store_true", help="keep the provider's rows")
    reembed.add_argument("--batch-size", type=int, default=128, help="texts per request")
    reembed.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    cache_arguments(reembed)
    thresholds = actions.add_parser(
        "thresholds",
        help="list similarity cut-offs hard-coded in code, recalibrated when a mapping is given",
    )
    thresholds.add_argument("--scan", type=Path, required=True, help="a directory or .py file")
    thresholds.add_argument("--mapping", type=Path, default=None, help="a saved mapping (JSON)")
    thresholds.add_argument("--sample", type=Path, default=None, help="texts (JSONL/Parquet)")
    thresholds.add_argument("--from-model", default=None, metavar="PROVIDER:MODEL")
    thresholds.add_argument("--to-model", default=None, metavar="PROVIDER:MODEL")
    thresholds.add_argument("--from-prefix", default="", help="put before the old model's texts")
    thresholds.add_argument("--to-prefix", default="", help="put before the new model's texts")
    thresholds.add_argument("--save-mapping", type=Path, default=None, metavar="FILE")
    thresholds.add_argument("--json", action="store_true")
    cache_arguments(thresholds)
    embeddings_compare.add_parser(actions)
    embeddings_report.add_parser(actions)


def run(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    from mirror.embeddings import EmbeddingError

    out = out or sys.stdout
    try:
        if args.embeddings_command == "compare":
            return embeddings_compare.run(settings, args, out)
        if args.embeddings_command == "report":
            return embeddings_report.run(settings, args, out)
        if args.embeddings_command == "reembed":
            return asyncio.run(reembed(settings, args, out))
        return thresholds(settings, args, out)
    except (CorpusError, ConfigError) as exc:
        print(f"shadowjudge embeddings: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except EmbeddingError as exc:
        print(f"shadowjudge embeddings: {exc}", file=sys.stderr)  # noqa: T201
        return 1


# --- reembed -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    written: int = 0
    embedded: int = 0
    cached: int = 0


async def reembed(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from mirror.embeddings import EmbeddingModel

    for name in ("batch_size", "concurrency"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    try:
        model = EmbeddingModel(
            provider=args.provider,
            model=args.model,
            version=args.version,
            dimensions=args.dimensions,
            normalize=not args.no_normalize,
            query_prefix=args.prefix,
            document_prefix=args.prefix,
            query_input_type=args.input_type,
            document_input_type=args.input_type,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    check_provider(settings, model.provider)
    ids = check_corpus(args.corpus)
    output = VectorOutput.open(args.out, model)
    tally = _Tally()
    started = time.perf_counter()
    try:
        async with cached_embeddings(settings, args, [model]) as cached:
            await _embed_corpus(cached, model, args, output, ids, tally)
    finally:
        output.close()
    elapsed = time.perf_counter() - started
    before = len(ids) - tally.written
    rate = tally.written / elapsed if elapsed > 0 else 0.0
    print(  # noqa: T201
        f"reembed {model.label}: {len(ids)} ids in {args.out} ({tally.written} written now:"
        f" {tally.embedded} embedded, {tally.cached} from the cache; {before} already there)"
        f" in {elapsed:.1f} s, {rate:.0f} texts/s",
        file=out,
    )
    return 0


async def _embed_corpus(
    cached: CachedEmbeddings,
    model: EmbeddingModel,
    args: argparse.Namespace,
    output: VectorOutput,
    ids: set[Id],
    tally: _Tally,
) -> None:
    from tqdm import tqdm

    from mirror.embeddings import Role

    progress = tqdm(
        total=len(ids),
        initial=len(ids & output.done),
        desc="reembed",
        unit="text",
        file=sys.stderr,
        disable=None,  # a bar on a terminal only
        smoothing=0.1,
    )
    in_flight: set[asyncio.Task[None]] = set()

    async def batch(batch_ids: list[Id], texts: list[str]) -> None:
        embedded = await cached.embed(model, texts, Role.DOCUMENT)
        output.append(batch_ids, embedded.vectors)  # no await: appends never interleave
        tally.written += len(batch_ids)
        tally.embedded += embedded.embedded
        tally.cached += embedded.cached
        progress.update(len(batch_ids))

    async def room(limit: int) -> None:
        while len(in_flight) > limit:
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight.difference_update(done)
            for task in done:
                task.result()  # the first failure stops the run

    try:
        batch_ids: list[Id] = []
        texts: list[str] = []
        for row in read_corpus(args.corpus):
            if row.id in output.done:
                continue
            batch_ids.append(row.id)
            texts.append(row.text)
            if len(texts) == args.batch_size:
                await room(args.concurrency - 1)
                in_flight.add(asyncio.create_task(batch(batch_ids, texts)))
                batch_ids, texts = [], []
        if texts:
            await room(args.concurrency - 1)
            in_flight.add(asyncio.create_task(batch(batch_ids, texts)))
        await room(0)
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        progress.close()


# --- thresholds --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreMapping:
    """Both models' neighbour scores on the same sample: what quantile matching needs."""

    from_model: str
    to_model: str
    old_scores: npt.NDArray[np.float64]
    new_scores: npt.NDArray[np.float64]

    def as_json(self) -> dict[str, Any]:
        return {
            "from_model": self.from_model,
            "to_model": self.to_model,
            "neighbours": NEIGHBOURS,
            "old_scores": [round(float(v), 6) for v in self.old_scores],
            "new_scores": [round(float(v), 6) for v in self.new_scores],
        }


def load_mapping(path: Path) -> ScoreMapping:
    import numpy as np

    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        mapping = ScoreMapping(
            from_model=str(found["from_model"]),
            to_model=str(found["to_model"]),
            old_scores=np.asarray(found["old_scores"], dtype=np.float64),
            new_scores=np.asarray(found["new_scores"], dtype=np.float64),
        )
        for scores in (mapping.old_scores, mapping.new_scores):
            if scores.ndim != 1 or scores.size == 0 or not np.all(np.isfinite(scores)):
                raise ValueError("scores must be non-empty lists of finite numbers")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--mapping {path}: not a score mapping ({type(exc).__name__}: {exc})"
        ) from exc
    return mapping


def thresholds(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    if args.mapping is not None and args.sample is not None:
        raise ConfigError("--mapping and --sample: give one")
    if args.sample is not None and not (args.from_model and args.to_model):
        raise ConfigError(
            "--sample needs --from-model PROVIDER:MODEL and --to-model PROVIDER:MODEL"
        )
    if not args.scan.exists():
        raise ConfigError(f"--scan {args.scan}: no such file or directory")
    found, unreadable = scan(args.scan)
    mapping: ScoreMapping | None = None
    if args.mapping is not None:
        mapping = load_mapping(args.mapping)
    elif args.sample is not None:
        mapping = asyncio.run(sample_mapping(settings, args))
        if args.save_mapping is not None:
            args.save_mapping.write_text(json.dumps(mapping.as_json()) + "\n", encoding="utf-8")
    rows = [_recalibrated(cutoff, mapping) for cutoff in found]
    if args.json:
        shown = {
            "mapping": None
            if mapping is None
            else {"from_model": mapping.from_model, "to_model": mapping.to_model},
            "cutoffs": rows,
            "unreadable": [{"path": str(u.path), "reason": u.reason} for u in unreadable],
        }
        print(json.dumps(shown, indent=2), file=out)  # noqa: T201
        return 0
    _render(rows, mapping, out)
    for problem in unreadable:
        print(f"not scanned: {problem.path}: {problem.reason}", file=out)  # noqa: T201
    return 0


def _recalibrated(cutoff: Cutoff, mapping: ScoreMapping | None) -> dict[str, Any]:
    from judge.embeddings.thresholds import map_threshold

    row: dict[str, Any] = {
        "where": cutoff.where,
        "kind": cutoff.kind,
        "value": cutoff.value,
        "code": cutoff.code,
    }
    if mapping is None:
        return row
    distance = cutoff.kind == "distance"
    old = 1.0 - cutoff.value if distance else cutoff.value
    mapped = map_threshold(mapping.old_scores, mapping.new_scores, old)
    row["recalibrated"] = round(1.0 - mapped.new_threshold if distance else mapped.new_threshold, 4)
    row["passes_before"] = mapped.flag_rate_before
    row["passes_unchanged"] = mapped.flag_rate_unchanged
    row["passes_after"] = mapped.flag_rate_after
    if distance:
        row["note"] = "mapped as a cosine distance (1 - similarity)"
    return row


def _render(rows: list[dict[str, Any]], mapping: ScoreMapping | None, out: TextIO) -> None:
    if mapping is None:
        print(  # noqa: T201
            f"{len(rows)} score cut-offs found; no mapping, so listed only"
            " (recalibrate with --mapping FILE, or --sample FILE --from-model P:M --to-model P:M)",
            file=out,
        )
        for row in rows:
            print(f"{row['where']}  {row['kind']} {row['value']:g}  {row['code']}", file=out)  # noqa: T201
        return
    print(  # noqa: T201
        f"{len(rows)} score cut-offs found, recalibrated {mapping.from_model} ->"
        f" {mapping.to_model} by quantile matching of top-{NEIGHBOURS} neighbour scores"
        f" ({mapping.old_scores.size} scores); 'passes' is the share of neighbour scores on"
        " the passing side: before / the value unchanged / recalibrated",
        file=out,
    )
    for row in rows:
        note = f"  ({row['note']})" if "note" in row else ""
        print(  # noqa: T201
            f"{row['where']}  {row['kind']} {row['value']:g} -> {row['recalibrated']:g}"
            f"  passes {row['passes_before']:.1%} / {row['passes_unchanged']:.1%} /"
            f" {row['passes_after']:.1%}  {row['code']}{note}",
            file=out,
        )


async def sample_mapping(settings: Settings, args: argparse.Namespace) -> ScoreMapping:
    """Both models' top-10 neighbour scores among the sample's texts (each text a query)."""
    import numpy as np

    from judge.embeddings.neighbours import top_k
    from mirror.embeddings import Role

    old_model = model_spec(
        args.from_model,
        "--from-model",
        query_prefix=args.from_prefix,
        document_prefix=args.from_prefix,
    )
    new_model = model_spec(
        args.to_model, "--to-model", query_prefix=args.to_prefix, document_prefix=args.to_prefix
    )
    for model in (old_model, new_model):
        check_provider(
            settings, model.provider, "--from-model" if model is old_model else "--to-model"
        )
    check_corpus(args.sample)
    texts = [row.text for row in read_corpus(args.sample)]
    if len(texts) <= NEIGHBOURS:
        raise CorpusError(f"{args.sample}: {len(texts)} texts; a mapping needs more than 10")
    scores = []
    async with cached_embeddings(settings, args, [old_model, new_model]) as cached:
        for model in (old_model, new_model):
            vectors = (await cached.embed(model, texts, Role.DOCUMENT)).vectors
            own = np.arange(len(texts))
            scores.append(top_k(vectors, vectors, NEIGHBOURS, exclude=own).scores.ravel())
    return ScoreMapping(
        from_model=old_model.label,
        to_model=new_model.label,
        old_scores=scores[0].astype(np.float64),
        new_scores=scores[1].astype(np.float64),
    )
