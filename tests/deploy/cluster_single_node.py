"""deploy/clickhouse/cluster.sql run on chDB: parsed as written, executed in single-node form.

    .venv/bin/python -m tests.deploy.cluster_single_node WORKDIR   (prints one JSON object)

Run in a process of its own by tests/deploy/test_cluster_sql.py: chDB is one engine per
process, and this one needs its own config file. There is no Keeper and no second server, so:

1. every statement is parsed as written (`EXPLAIN AST`), `ON CLUSTER '{cluster}'` and all;
2. `Store.migrate_cluster` — the code `shadowjudge migrate --cluster NAME` runs — applies the
   file through `SingleNode`, a client that forwards every statement to chDB after two
   rewrites: `ON CLUSTER '...'` dropped (no Keeper to distribute DDL) and `Replicated*MergeTree`
   made the plain engine with the deduplication window a Replicated table has by default. The
   Distributed tables stay as written: `remote_servers` (one shard, `internal_replication`,
   on this engine's own `tcp_port`, so the shard is local) and the `{cluster}` macro come from
   the config file, so a read or an insert really goes through the Distributed engine;
3. the same store, and a single-node store in another database, take the same batches: the
   columns, the counts and the aggregates must agree, a replayed batch must add nothing, a
   block resent with its deduplication token must be dropped (the view included), and a
   duplicate written by a second writer must collapse on merge.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect

from judge.store.cluster import statements
from judge.store.schema import apply_migrations
from judge.store.store import Store
from tests.judge.store.test_store import make_comparison, make_pair

CLUSTER = "shadowjudge"
SQL = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse" / "cluster.sql"
CONFIG = f"""<clickhouse>
  <tcp_port>9000</tcp_port>
  <macros><cluster>{CLUSTER}</cluster><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <{CLUSTER}>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>9000</port></replica>
      </shard>
    </{CLUSTER}>
  </remote_servers>
</clickhouse>
"""
#: A Replicated table deduplicates the last blocks by default; the plain engine needs telling.
_WINDOW = "non_replicated_deduplication_window = 1000"
_ON_CLUSTER = re.compile(r"\s+ON CLUSTER\s+'[^']*'")
_REPLICATED = re.compile(r"\bReplicated(\w*MergeTree)(?:\('[^']*', '[^']*'(?:, )?([^)]*)\))?")


def single_node(statement: str) -> str:
    """A cluster statement as one node without Keeper runs it."""
    rewritten = _ON_CLUSTER.sub("", statement)
    if _REPLICATED.search(rewritten):
        # The path and replica go; an engine's own parameters (a version column) stay.
        rewritten = _REPLICATED.sub(lambda m: m[1] + (f"({m[2]})" if m[2] else ""), rewritten)
        if "SETTINGS" in rewritten:
            rewritten = rewritten.replace("SETTINGS", f"SETTINGS {_WINDOW},", 1)
        else:
            rewritten = f"{rewritten}\nSETTINGS {_WINDOW}"
    return rewritten


class SingleNode:
    """A clickhouse-connect client whose DDL runs in single-node form (`single_node`)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.executed: list[str] = []

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.executed.append(sql)
        return self._client.command(single_node(sql), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_client", "executed"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._client, name, value)


def same(a: Any, b: Any) -> bool:
    """Equal, floats within rounding (sums added in another order), NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if not same(a.get(k), b.get(k)))


def columns(client: Any, table: str) -> list[tuple[str, str]]:
    rows = client.query(f"DESCRIBE TABLE {table}").result_rows
    return [(row[0], row[1]) for row in rows]


def main(workdir: Path) -> dict[str, Any]:
    sql = SQL.read_text(encoding="utf-8")
    config = workdir / "config.xml"
    config.write_text(CONFIG)
    client = clickhouse_connect.get_client(
        interface="chdb",
        path=str(workdir / "chdb"),
        chdb_options={"config-file": str(config)},
        tz_mode="aware",
        settings={"max_query_size": 64 * 1024 * 1024},
    )
    parsed = 0
    for statement in statements(sql):
        client.query(f"EXPLAIN AST {statement}")
        parsed += 1
    found: dict[str, Any] = {"statements": parsed}
    found["clusters"] = client.query(
        "SELECT cluster, shard_num, is_local FROM system.clusters WHERE cluster = {c:String}",
        parameters={"c": CLUSTER},
    ).result_rows
    for database in ("cluster", "single"):
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")

    client.database = "cluster"
    wrapped = SingleNode(client)
    cluster = Store(wrapped)
    found["recorded_now"] = cluster.migrate_cluster(CLUSTER, sql)
    found["recorded_again"] = cluster.migrate_cluster(CLUSTER, sql)
    found["not_on_cluster"] = [
        s.split("(")[0].strip() for s in wrapped.executed if f"ON CLUSTER '{CLUSTER}'" not in s
    ]
    found["executed"] = len(wrapped.executed)
    found["versions"] = sorted(
        row[0] for row in client.query("SELECT DISTINCT version FROM schema_versions").result_rows
    )
    tables = {
        row[0]: row[1]
        for row in client.query(
            "SELECT name, engine FROM system.tables WHERE database = 'cluster'"
        ).result_rows
    }
    found["engines"] = tables

    other = clickhouse_connect.get_client(
        interface="chdb", path=str(workdir / "chdb"), tz_mode="aware", database="single"
    )
    single = Store(other)
    found["single_versions"] = sorted(apply_migrations(other, 30))
    mismatched = []
    for table, engine in sorted(tables.items()):
        if engine != "Distributed":
            continue
        expected = columns(other, table)
        for name in (table, f"{table}_local"):
            if columns(client, name) != expected:
                mismatched.append(name)
    found["column_mismatches"] = mismatched

    # The same batches into both stores: a fresh one, then a replay of it plus new pairs.
    pairs = [make_pair(i, migration="dep") for i in range(300)]
    pairs += [make_pair(i, migration="dep", arm="noise") for i in range(0, 300, 3)]
    comparisons = [make_comparison(p, i) for i, p in enumerate(pairs)]
    first, second = slice(0, 250), slice(150, len(pairs))
    written = {}
    for name, store in (("cluster", cluster), ("single", single)):
        written[name] = [
            store.insert_pairs(pairs[first], comparisons[first]),
            store.insert_pairs(pairs[second], comparisons[second]),
            store.insert_pairs(pairs, comparisons),
        ]
    found["written"] = written
    found["counts"] = {
        "cluster": cluster.count_comparisons("dep"),
        "single": single.count_comparisons("dep"),
    }
    found["aggregates_differ"] = differ(
        cluster.aggregate_counts("dep"), single.aggregate_counts("dep")
    )
    found["pairs_counted"] = cluster.aggregate_counts("dep")["pairs"]
    span = (datetime.now(UTC) - timedelta(days=3650), datetime.now(UTC) + timedelta(days=1))
    found["verify_stats"] = [list(map(str, row)) for row in cluster.verify_stats(*span)]

    # A block resent with its token (a retried insert whose ack was lost) is dropped, view too;
    # a second writer's duplicate (another token) lands, and merges away.
    extra = make_pair(999, migration="dup")
    row = {"call_id": extra.call.call_id, "migration": "dup", "arm": "cand"}
    names = ["call_id", "migration", "arm", "arm_kind", "captured_at", "schema_version"]
    values = [[*row.values(), "candidate", extra.call.captured_at, 1]]

    def insert_pair_row(token: str) -> None:
        client.insert(
            "pairs",
            values,
            column_names=names,
            settings={
                "insert_deduplication_token": token,
                "distributed_foreground_insert": 1,
            },
        )

    insert_pair_row("retry-1")
    insert_pair_row("retry-1")
    found["after_retry"] = client.command("SELECT count() FROM pairs WHERE migration = 'dup'")
    comparison = make_comparison(extra, 999)
    for token in ("a", "a", "b"):  # resent once, then written again by a second writer
        client.command(
            "INSERT INTO comparisons (call_id, migration, arm, judge_version, captured_at,"
            " judged_at, verdict, tier) SETTINGS distributed_foreground_insert = 1,"
            f" insert_deduplication_token = '{token}',"
            " deduplicate_blocks_in_dependent_materialized_views = 1 VALUES"
            f" ('{extra.call.call_id}', 'dup', 'cand', 'v1', now64(6), now64(6),"
            f" '{comparison.verdict}', 'exact')"
        )
    found["dup_raw"] = client.command("SELECT count() FROM comparisons WHERE migration = 'dup'")
    found["dup_counted"] = client.command(
        "SELECT sum(pairs) FROM comparison_stats_hourly WHERE migration = 'dup' AND segment = '*'"
    )
    client.command("OPTIMIZE TABLE comparisons_local FINAL")
    found["dup_merged"] = client.command("SELECT count() FROM comparisons WHERE migration = 'dup'")
    return found


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(Path(sys.argv[1])), default=str) + "\n")
