"""The ClickHouse store: writes judged batches exactly once, reads pairs back for `rejudge`.

`Store` is synchronous (clickhouse-connect and chDB have no async API); `AsyncStore` runs each
call in a worker thread, one at a time. The schema, and why a replay never double-counts, are
in `judge.store.schema`. Every clickhouse-connect or chDB exception leaves as a `StoreError`
(`judge.errors`), `retriable` when the same call may succeed later.

URLs: `chdb:///abs/dir`, `chdb:///./relative/dir` or `chdb://relative/dir` (the directory is
created unless the caller only reads; `?database=x` picks a database; `chdb://memory` keeps
nothing), or `http(s)://user:pass@host:8123/db`. A missing database is created. A chDB
directory is claimed before the engine loads (`judge.store.claim`): one process per directory,
and a refusal that says who holds it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import orjson

from judge.comparison import Comparison
from judge.config import StoreSettings
from judge.errors import (
    JudgeError,
    StoreClosedError,
    StoreLockedError,
    StoreUnavailableError,
    store_error,
)
from judge.store.claim import DirectoryClaim, chdb_directory, claim, status_held
from judge.store.cluster import apply_cluster, cluster_behind
from judge.store.columns import call_row, document, send
from judge.store.list_verdicts import (
    LIST_VERDICT_COLUMNS,
    ListVerdictRow,
    list_verdict_row,
    read_list_verdicts,
)
from judge.store.rows import (
    CALL_COLUMNS,
    COMPARISON_FIELDS,
    HOUR,
    PAIR_COLUMNS,
    REFERENCE_COLUMNS,
    ReferenceRow,
    hour_span,
    insert,
    journal,
    micros,
    reference_row,
    reference_rows,
    where_clause,
)
from judge.store.schema import (
    REBUILD_STATS_SQL,
    STATS_COLUMNS,
    UNFINISHED_WRITES_SQL,
    VERIFY_STATS_SQL,
    apply_migrations,
    existing_keys_sql,
    identifier,
    read_pairs_sql,
    stats_read,
)
from mirror.events import CapturedCall, ShadowPair, dump_event, parse_shadow_pair

Key = tuple[str, str, str, str]  # (call_id, migration, arm, judge_version)
T = TypeVar("T")
P = ParamSpec("P")


@dataclass(slots=True)
class BatchRows:
    """What `insert_pairs` writes of a batch: rows of calls and pairs (in their columns'
    order), embedding reference rows, and the comparisons (each its own row)."""

    calls: list[tuple[Any, ...]]
    pairs: list[tuple[Any, ...]]
    references: list[ReferenceRow]
    comparisons: list[Comparison]


@dataclass(slots=True)
class PreparedBatch:
    """A batch made ready for `Store.insert_prepared` by `Store.prepare`."""

    pairs: Sequence[ShadowPair]
    raw_pairs: Sequence[bytes] | None
    #: The batch's comparisons, one per key (the first of a key wins).
    unique: dict[Key, Comparison]
    call_ids: set[str]
    #: The rows and their JSON documents (`judge.store.columns`) for a store that has none of
    #: the batch.
    rows: BatchRows | None = None
    documents: dict[str, bytes | None] | None = None


def _batch_rows(batch: PreparedBatch, existing: set[Key]) -> BatchRows:
    """The rows of `batch` the store lacks, given the keys it has (`existing`)."""
    done_pairs = {key[:3] for key in existing}
    done_calls = {key[0] for key in existing}
    calls: dict[str, CapturedCall] = {}
    pair_rows: list[tuple[Any, ...]] = []
    references: list[ReferenceRow] = []
    raw_pairs = batch.raw_pairs
    for i, pair in enumerate(batch.pairs):
        call = pair.call
        pair_key = (call.call_id, pair.migration, pair.arm.name)
        if pair_key in done_pairs:
            continue
        done_pairs.add(pair_key)
        if call.call_id not in done_calls:
            calls.setdefault(call.call_id, call)
        if pair.reference:  # vectors go to embedding_reference only (its own TTL)
            references.extend(reference_rows(pair))
            raw = dump_event(pair.model_copy(update={"reference": ()}))
        else:
            raw = raw_pairs[i] if raw_pairs is not None else dump_event(pair)
        pair_rows.append((*pair_key, pair.arm.kind, call.captured_at, pair.schema_version, raw))
    return BatchRows(
        [call_row(c) for c in calls.values()],
        pair_rows,
        references,
        [c for key, c in batch.unique.items() if key not in existing],
    )


def _documents(rows: BatchRows) -> dict[str, bytes | None]:
    return {
        "calls": document(CALL_COLUMNS, rows.calls),
        "pairs": document(PAIR_COLUMNS, rows.pairs),
        "comparisons": document(COMPARISON_FIELDS, rows.comparisons),
    }


#: The existence check sends the batch's call_ids in one literal; allow big batches.
_CLIENT_SETTINGS = {"max_query_size": 64 * 1024 * 1024}
#: DateTime64's last day: an open `until`.
_END_OF_DATETIME64 = 10_413_791_999_000_000  # 2299-12-31 23:59:59 UTC


class Store:
    """The judge's view of ClickHouse. Thread-safe: calls are serialised on one client."""

    def __init__(
        self, client: Any, *, body_ttl_days: int = 30, claim: DirectoryClaim | None = None
    ) -> None:
        self._client: Any = client
        self._body_ttl_days = body_ttl_days
        self._claim = claim
        self._lock = threading.RLock()

    @classmethod
    def open(cls, settings: StoreSettings, *, create: bool = True) -> Store:
        """Connect (chDB: claim the directory, creating it when `create`), and make sure the
        database exists. With `create=False` a chDB directory that does not exist is a
        `StoreMissingError`, and nothing is made on disk."""
        # Imported here: clickhouse-connect takes ~0.15 s; a command that fails first, or
        # finds its answer elsewhere, should not pay it.
        import clickhouse_connect
        from clickhouse_connect.driver import options

        # Rows go in as lists, never DataFrames: told that pandas is absent (its own state when
        # pandas is not installed), the first insert does not import it (0.5 s, ~90 MB) only to
        # see that the data is not a DataFrame.
        if "pd" not in vars(options):
            options.pd = options.pd_time_test = None

        parts = urlsplit(settings.url)
        path = chdb_directory(settings.url)
        directory = Path(path) if path is not None and path != "memory" else None
        held = claim(directory, create=create) if directory is not None else None
        try:
            if path is not None:
                database = parse_qs(parts.query).get("database", [""])[0]
                client = clickhouse_connect.get_client(
                    interface="chdb",
                    path=None if path == "memory" else path,
                    tz_mode="aware",
                    settings=_CLIENT_SETTINGS,
                )
            else:
                database = unquote(parts.path.strip("/"))
                client = clickhouse_connect.get_client(
                    dsn=urlunsplit(parts._replace(path="")),
                    tz_mode="aware",
                    settings=_CLIENT_SETTINGS,
                )
        except Exception as exc:
            if held is not None:
                held.release()
            if directory is not None and status_held(directory):
                # Lost a race with a process that opened it without claiming it first.
                raise StoreLockedError(
                    f"open chdb store: the directory {path} is held by another process (chDB"
                    " allows one process per directory): stop it, or set store.url to another"
                    " directory",
                    condition="locked",
                ) from exc
            raise store_error(exc, f"open {parts.scheme} store") from exc
        store = cls(client, body_ttl_days=settings.body_ttl_days, claim=held)
        try:
            if database:
                store._use_database(database)
        except BaseException:
            store.close()
            raise
        return store

    def _use_database(self, database: str) -> None:
        with self._call(f"use database {database}") as ch:
            exists = ch.command(
                "SELECT count() FROM system.databases WHERE name = {db:String}",
                parameters={"db": database},
            )
            if not int(exists):
                ch.command(f"CREATE DATABASE IF NOT EXISTS {identifier(database)}")
            ch.database = database

    def migrate(self) -> list[int]:
        """Apply the schema idempotently; returns the migration versions applied now."""
        with self._call("migrate") as ch:
            behind = cluster_behind(ch)
            if behind:
                raise StoreUnavailableError(
                    f"migrate: the cluster schema lacks versions {behind}: apply them with"
                    " `shadowjudge migrate --cluster NAME` (the single-node form would change"
                    " one node's Distributed tables only)",
                    condition="cluster schema behind",
                )
            return apply_migrations(ch, self._body_ttl_days)

    def migrate_cluster(self, cluster: str, sql: str) -> list[int]:
        """Apply deploy/clickhouse/cluster.sql (`sql`) on `cluster`, then the migrations it
        does not record, each on every node (`judge.store.cluster`); returns those versions."""
        with self._call(f"migrate cluster {cluster}") as ch:
            return apply_cluster(ch, sql, cluster, self._body_ttl_days)

    # -- writes -------------------------------------------------------------------------------

    def insert_pairs(
        self,
        pairs: Sequence[ShadowPair],
        comparisons: Sequence[Comparison],
        *,
        raw_pairs: Sequence[bytes] | None = None,
        written: list[Comparison] | None = None,
        written_references: list[ReferenceRow] | None = None,
        prepared: PreparedBatch | None = None,
    ) -> int:
        """Write a batch's calls, pairs and comparisons, skipping what the store already has.

        Returns the number of comparison rows written; `written`, when given, is extended with
        those rows (the judge counts verdicts from them, so a replay never counts twice).
        `raw_pairs`, when given, are the pairs' JSON as read from the bus (same order as
        `pairs`), stored as is instead of re-dumped.
        An embedding pair's reference texts (`ShadowPair.reference`) become
        `embedding_reference` rows, written with the pair (before the comparisons, which mark
        the batch written), and are left out of its stored JSON: vectors live only in that
        table, under its retention. A replayed pair is skipped with its rows, so a replay adds
        none; a crash between the inserts leaves at worst a duplicate, which the table's
        ReplacingMergeTree and its readers absorb. `written_references`, when given, is
        extended with the rows written.
        Safe to call again with any overlap of earlier batches: see `judge.store.schema`,
        "Exactly once". `prepared`, when given, is `prepare(pairs, comparisons, raw_pairs)`
        done beforehand (the judge builds it while the batch before is written).
        """
        if prepared is None:
            prepared = self.prepare(pairs, comparisons, raw_pairs=raw_pairs)
        return self.insert_prepared(
            prepared,
            written=written,
            written_references=written_references,
        )

    @staticmethod
    def prepare(
        pairs: Sequence[ShadowPair],
        comparisons: Sequence[Comparison],
        *,
        raw_pairs: Sequence[bytes] | None = None,
    ) -> PreparedBatch:
        """`insert_pairs`' rows and documents for a store that has none of the batch yet: pure
        Python, no call to the store, so the judge builds them while the batch before is
        written (`judge.worker`). `insert_prepared` uses them as they are when the store has
        none of the batch (the rule), and builds what is left otherwise (a replay)."""
        if raw_pairs is not None and len(raw_pairs) != len(pairs):
            raise ValueError("raw_pairs must match pairs one to one")
        unique: dict[Key, Comparison] = {}
        for comparison in comparisons:
            unique.setdefault(comparison.key, comparison)  # the first of a key wins
        call_ids = {p.call.call_id for p in pairs} | {key[0] for key in unique}
        batch = PreparedBatch(pairs, raw_pairs, unique, call_ids)
        batch.rows = _batch_rows(batch, set())
        batch.documents = _documents(batch.rows)
        return batch

    def insert_prepared(
        self,
        batch: PreparedBatch,
        *,
        written: list[Comparison] | None = None,
        written_references: list[ReferenceRow] | None = None,
    ) -> int:
        """Write a `prepare`d batch: `insert_pairs` after its first step."""
        if not batch.call_ids:
            return 0
        with self._lock:  # the check and the inserts are one step for this process
            with self._call("look up batch keys") as ch:
                existing = self._existing(ch, batch.call_ids)
            rows, documents = batch.rows, batch.documents
            if existing or rows is None or documents is None:  # a replay: what is left
                rows = _batch_rows(batch, existing)
                documents = _documents(rows)
            token = uuid.uuid4().hex
            hours = sorted({micros(c.captured_at) // HOUR * HOUR for c in rows.comparisons})
            with self._call("insert batch") as ch:
                if rows.comparisons:  # journalled: a crash inside the inserts is found by `recover`
                    journal(ch, token, hours, "started")
                # Comparisons last: a comparison row marks its call and pair as written.
                send(ch, "calls", CALL_COLUMNS, rows.calls, documents["calls"], token)
                send(ch, "pairs", PAIR_COLUMNS, rows.pairs, documents["pairs"], token)
                insert(
                    ch,
                    "embedding_reference",
                    REFERENCE_COLUMNS,
                    [reference_row(r) for r in rows.references],
                    token,
                )
                send(
                    ch,
                    "comparisons",
                    COMPARISON_FIELDS,
                    rows.comparisons,
                    documents["comparisons"],
                    token,
                )
                if rows.comparisons:
                    journal(ch, token, hours, "done")
            if written is not None:
                written.extend(rows.comparisons)
            if written_references is not None:
                written_references.extend(rows.references)
            return len(rows.comparisons)

    def insert_references(self, rows: Sequence[ReferenceRow]) -> int:
        """Write embedding reference-set rows (`embedding_reference`); returns how many.

        No existence check: the table is a ReplacingMergeTree on (migration, arm, role,
        segment_key, text_hash) and nothing aggregates it on insert, so a row written twice
        (a replay, two runners sending one text) collapses on merge and readers take one per
        key (FINAL / LIMIT 1 BY). `insert_pairs` writes a pair's rows with the pair itself.
        """
        return self._insert_rows(
            "embedding_reference", REFERENCE_COLUMNS, [reference_row(row) for row in rows]
        )

    def insert_list_verdicts(self, rows: Sequence[ListVerdictRow]) -> int:
        """Write the LLM judge's list verdicts of an embedding migration
        (`embedding_list_verdicts`); returns how many. A verdict asked again is a newer row of
        the same key: the ReplacingMergeTree keeps it, readers take the latest."""
        return self._insert_rows(
            "embedding_list_verdicts",
            LIST_VERDICT_COLUMNS,
            [list_verdict_row(row) for row in rows],
        )

    def _insert_rows(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> int:
        """One insert of `rows` into `table` with a token of its own; how many rows."""
        if not rows:
            return 0
        with self._call(f"insert into {table}") as ch:
            insert(ch, table, columns, rows, uuid.uuid4().hex)
        return len(rows)

    def list_verdicts(
        self,
        *,
        migration: str,
        arm: str,
        models: tuple[str, str, str, str],
        prompt_version: str,
        query_hashes: Sequence[str],
        days: int = 30,
    ) -> list[ListVerdictRow]:
        """The latest stored list verdict per (query, lists) of these queries
        (`judge.store.list_verdicts.read_list_verdicts`)."""
        return read_list_verdicts(
            self,
            migration=migration,
            arm=arm,
            models=models,
            prompt_version=prompt_version,
            query_hashes=query_hashes,
            days=days,
        )

    def recover(self) -> list[datetime]:
        """Repair what a writer killed mid-batch may have left: the aggregates of the hours an
        unfinished batch touched are checked against `comparisons` and rebuilt where they
        disagree (a `comparisons` part written without its view's part). Run it at start,
        before consuming; returns the hours rebuilt."""
        with self._lock:  # re-entrant: the checks below take it again
            with self._call("read the write journal") as ch:
                unfinished = ch.query(UNFINISHED_WRITES_SQL).result_rows
            rebuilt: list[datetime] = []
            for hour in sorted({hour for _, touched in unfinished for hour in touched}):
                since = datetime.fromtimestamp(hour / 1_000_000, UTC)
                until = since + timedelta(hours=1)
                if self.verify_stats(since, until):
                    self.rebuild_stats(since, until)
                    rebuilt.append(since)
            with self._call("close the write journal") as ch:
                for token, touched in unfinished:
                    journal(ch, token, list(touched), "done")
            return rebuilt

    # -- reads --------------------------------------------------------------------------------

    def existing_keys(self, keys: Iterable[Key]) -> set[Key]:
        """The subset of comparison keys (call_id, migration, arm, judge_version) stored."""
        wanted = set(keys)
        if not wanted:
            return set()
        with self._call("look up comparison keys") as ch:
            return self._existing(ch, {key[0] for key in wanted}) & wanted

    @staticmethod
    def _existing(ch: Any, call_ids: set[str]) -> set[Key]:
        raw = ch.raw_query(existing_keys_sql(call_ids))
        return {tuple(orjson.loads(line)) for line in raw.splitlines()}

    def read_pairs(
        self,
        migration: str,
        since: datetime,
        until: datetime | None = None,
        limit: int | None = None,
        *,
        page_rows: int = 1_000,
    ) -> Iterator[ShadowPair]:
        """Stored pairs of a migration captured in [since, until), in call_id order.

        Pages of `page_rows` by key, so no query stays open between pages (a consumer may write
        to the store while it iterates). Pairs whose body has expired (TTL) are skipped.
        """
        after: tuple[str, str] = ("", "")
        left = limit
        while left is None or left > 0:
            rows = min(page_rows, left) if left is not None else page_rows
            page = self._read_page(migration, since, until, after=after, rows=rows)
            yield from (pair for _, _, pair in page)
            if len(page) < rows:
                return
            after = page[-1][:2]
            left = None if left is None else left - len(page)

    def _read_page(
        self,
        migration: str,
        since: datetime,
        until: datetime | None,
        *,
        after: tuple[str, str],
        rows: int,
    ) -> list[tuple[str, str, ShadowPair]]:
        """One page of `read_pairs`: (call_id, arm, pair) after the (call_id, arm) `after`."""
        params = {"m": migration, "lo": micros(since), "a_call": after[0], "a_arm": after[1]}
        params["hi"] = micros(until) if until is not None else _END_OF_DATETIME64
        with self._call("read pairs") as ch:
            result = ch.query(
                read_pairs_sql(rows), parameters=params, column_formats={"pair_json": "bytes"}
            )
            page = result.result_rows
        return [(call_id, arm, parse_shadow_pair(raw)) for call_id, arm, raw in page]

    def migration_names(self) -> list[str]:
        """Every migration with a comparison stored, from the hourly aggregates (small)."""
        with self._call("list migrations") as ch:
            result = ch.query(
                "SELECT DISTINCT migration FROM comparison_stats_hourly ORDER BY migration"
            )
            return [str(row[0]) for row in result.result_rows]

    def count_comparisons(
        self, migration: str | None = None, judge_version: str | None = None
    ) -> int:
        """Distinct comparison keys stored (duplicates not yet merged away count once). A scan
        of the raw rows: for tests and checks, not for dashboards."""
        where, params = where_clause(migration=migration, judge_version=judge_version)
        with self._call("count comparisons") as ch:
            return int(
                ch.command(
                    "SELECT uniqExact(call_id, migration, arm, judge_version) FROM comparisons"
                    + where,
                    parameters=params,
                )
            )

    def aggregate_counts(
        self,
        migration: str,
        *,
        arm: str | None = None,
        segment: str = "*",
        judge_version: str | None = None,
    ) -> dict[str, Any]:
        """Every stats column, read over all hours: counts and sums as numbers, latency as
        quantile lists (0.5, 0.9, 0.95, 0.99), label counters as dicts."""
        where, params = where_clause(
            migration=migration, arm=arm, segment=segment, judge_version=judge_version
        )
        reads = ", ".join(f"{stats_read(n, t)} AS {n}" for n, t, _ in STATS_COLUMNS)
        with self._call("read comparison stats") as ch:
            result = ch.query(f"SELECT {reads} FROM comparison_stats_hourly{where}", params)
            return dict(zip(result.column_names, result.result_rows[0], strict=True))

    def select(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read query with bound parameters (`{name:Type}` placeholders), as dicts:
        the dashboards' one way in."""
        with self._call("read") as ch:
            result = ch.query(sql, parameters=parameters or {})
            names = result.column_names
            return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append rows to one of the history tables (`reviews`, `trigger_decisions`,
        `rollout`): plain MergeTree, every row kept."""
        if table not in ("reviews", "trigger_decisions", "rollout"):
            raise ValueError(f"{table}: not a history table")
        with self._call(f"write {table}") as ch:
            ch.insert(table, [list(row) for row in rows], column_names=list(columns))

    def verify_stats(self, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
        """Hours (of those touching [since, until)) whose aggregate pair count differs from the
        distinct keys in `comparisons`: (migration, arm, judge_version, hour, keys, counted)."""
        with self._call("verify comparison stats") as ch:
            return list(ch.query(VERIFY_STATS_SQL, parameters=hour_span(since, until)).result_rows)

    def rebuild_stats(self, since: datetime, until: datetime) -> None:
        """Recompute the aggregates of the hours touching [since, until) from
        `comparisons FINAL` (the view's own SELECT). Meant for closed hours: a pair written to
        those hours while this runs may be counted twice or not at all."""
        delete, insert = REBUILD_STATS_SQL
        params = hour_span(since, until)
        with self._call("rebuild comparison stats") as ch:
            ch.command(delete, parameters=params, settings={"mutations_sync": 2})
            # No block deduplication: the recomputed rows may equal a block inserted before.
            ch.command(insert, parameters=params, settings={"insert_deduplicate": 0})

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            held, self._claim = self._claim, None
        try:
            if client is not None:
                client.close()
        finally:
            if held is not None:  # after the engine let go of the directory
                held.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _call(self, doing: str) -> Iterator[Any]:
        """The client, held alone, with third-party errors translated on the way out."""
        with self._lock:
            if self._client is None:
                raise StoreClosedError(f"{doing}: the store is closed")
            try:
                yield self._client
            except JudgeError:
                raise
            except Exception as exc:
                raise store_error(exc, doing) from exc


class AsyncStore:
    """`Store` for asyncio code: each call runs in a worker thread, one at a time.

    The worker's calls have wrappers; anything else goes through `run`, e.g.
    `await astore.run(astore.store.aggregate_counts, "m1", segment="tenant=acme")`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, settings: StoreSettings, *, create: bool = True) -> AsyncStore:
        return cls(await asyncio.to_thread(Store.open, settings, create=create))

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a worker thread, after the calls before it."""
        async with self._lock:
            return await asyncio.to_thread(fn, *args, **kwargs)

    async def migrate(self) -> list[int]:
        return await self.run(self.store.migrate)

    async def migrate_cluster(self, cluster: str, sql: str) -> list[int]:
        return await self.run(self.store.migrate_cluster, cluster, sql)

    async def insert_pairs(
        self,
        pairs: Sequence[ShadowPair],
        comparisons: Sequence[Comparison],
        *,
        raw_pairs: Sequence[bytes] | None = None,
        written: list[Comparison] | None = None,
        written_references: list[ReferenceRow] | None = None,
        prepared: PreparedBatch | None = None,
    ) -> int:
        return await self.run(
            self.store.insert_pairs,
            pairs,
            comparisons,
            raw_pairs=raw_pairs,
            written=written,
            written_references=written_references,
            prepared=prepared,
        )

    async def read_pairs(
        self,
        migration: str,
        since: datetime,
        until: datetime | None = None,
        limit: int | None = None,
        *,
        page_rows: int = 1_000,
    ) -> AsyncIterator[ShadowPair]:
        # The sync generator pages by key and holds nothing between pages: each chunk is
        # pulled from it in a worker thread.
        pairs = self.store.read_pairs(migration, since, until, limit, page_rows=page_rows)
        while chunk := await self.run(lambda: list(islice(pairs, page_rows))):
            for pair in chunk:
                yield pair

    async def close(self) -> None:
        await self.run(self.store.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
