"""The store on a ClickHouse cluster: `shadowjudge migrate --cluster NAME`.

`deploy/clickhouse/cluster.sql` holds the schema as Replicated `_local` tables on every shard
behind Distributed tables with the names the store uses, every statement `ON CLUSTER
'{cluster}'`, and records the migration versions it contains. `apply_cluster` runs its
statements with the cluster named, then every migration no version row records, each
statement in its cluster form:

- `CREATE TABLE|VIEW IF NOT EXISTS name` gains `ON CLUSTER`, so a view or a table the file
  leaves to `migrate` (the plain `comparison_stats` view, the write journal) exists on every
  node a judge or the dashboards may reach, not only on the one that migrated;
- `ALTER TABLE t` on a Distributed `t` runs on `t_local` first, then on `t`: a column reaches
  the shards before the table that reads them names it;
- `CREATE MATERIALIZED VIEW v TO t AS SELECT ... FROM s` runs on every shard from `s_local`
  into `t_local` (the stats stay per shard; the Distributed table sums them);
- `DROP TABLE|VIEW IF EXISTS` and `TRUNCATE TABLE` go to every node with `SYNC` (a re-created
  Replicated table must not meet its old path in Keeper), on the `_local` table as well;
- `INSERT INTO t (...) SELECT ...` (a stats recompute) runs once, on this node, through the
  Distributed tables: it reads every shard and writes each row once;
- anything else is refused before anything runs, naming the migration: its cluster form
  belongs in cluster.sql, which then records its version.

A migration that recomputes the stats drops their view first, as on one node: pairs judged
meanwhile are missing from the aggregates (`Store.verify_stats` finds the hours). A judge or
the dashboards started on a cluster whose schema is behind wait for `migrate --cluster`
(`cluster_behind`) instead of applying the single-node form to one node's Distributed tables.
The single-node path (`schema.apply_migrations`) is unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from judge.store.schema import MIGRATIONS, SCHEMA_VERSIONS, Migration, literal, sync_body_ttl

#: How cluster.sql names the cluster (a string literal after ON CLUSTER and in Distributed()).
CLUSTER_PLACEHOLDER = "'{cluster}'"
#: Names a `remote_servers` entry can have (and all this module will put in a statement).
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: Inserts and DDL return once every shard has them: the next statement reads what they wrote.
SETTINGS = {"distributed_foreground_insert": 1, "distributed_ddl_output_mode": "throw"}

_CREATE = re.compile(
    r"^(CREATE (?:TABLE|VIEW) IF NOT EXISTS [`\w.]+)(\s)", re.IGNORECASE | re.DOTALL
)
_VIEW = re.compile(
    r"^(CREATE MATERIALIZED VIEW IF NOT EXISTS [`\w.]+)\s+TO\s+([`\w.]+)\s+AS(\s.*)$",
    re.IGNORECASE | re.DOTALL,
)
_FROM = re.compile(r"\bFROM\s+(\w+)\b", re.IGNORECASE)
_ALTER = re.compile(r"^ALTER TABLE ([`\w.]+)(\s.*)$", re.IGNORECASE | re.DOTALL)
_DROP = re.compile(r"^DROP (TABLE|VIEW) IF EXISTS ([`\w.]+)\s*$", re.IGNORECASE)
_TRUNCATE = re.compile(r"^TRUNCATE TABLE (?:IF EXISTS )?([`\w.]+)\s*$", re.IGNORECASE)
_INSERT_SELECT = re.compile(r"^INSERT INTO [`\w.]+\s*\([^)]*\)\s*SELECT\b", re.IGNORECASE)


class ClusterSchemaError(ValueError):
    """A migration with no cluster form, or a cluster name that cannot be one."""


def statements(sql: str) -> list[str]:
    """The statements of a SQL file: comment lines dropped, each ended by `;` at a line end."""
    found: list[str] = []
    lines: list[str] = []
    for line in sql.splitlines():
        if not line.strip() or line.lstrip().startswith("--"):
            continue
        lines.append(line)
        if line.rstrip().endswith(";"):
            found.append("\n".join(lines).rstrip().rstrip(";"))
            lines = []
    if lines:
        raise ClusterSchemaError("the last statement is not ended by `;`")
    return found


def named(sql: str, cluster: str) -> list[str]:
    """cluster.sql's statements with `cluster` in place of `'{cluster}'`."""
    if not CLUSTER_NAME.match(cluster):
        raise ClusterSchemaError(f"--cluster {cluster!r}: not a cluster name")
    return [s.replace(CLUSTER_PLACEHOLDER, literal(cluster)) for s in statements(sql)]


def cluster_form(
    migration: Migration, statement: str, cluster: str, distributed: set[str]
) -> list[str]:
    """The statements that apply one migration statement to every node (see the module)."""
    on = f"ON CLUSTER {literal(cluster)}"
    text = statement.strip()

    def local(name: str) -> str:
        return f"{name}_local" if name in distributed else name

    create = _CREATE.match(text)
    if create:
        return [f"{create[1]} {on}{text[create.end(1) :]}"]
    view = _VIEW.match(text)
    if view:  # on every shard, from its local table into its local aggregates
        body = _FROM.sub(lambda m: f"FROM {local(m[1])}", view[3], count=1)
        return [f"{view[1]} {on} TO {local(view[2])} AS{body}"]
    alter = _ALTER.match(text)
    if alter:
        table, rest = alter[1].strip("`"), alter[2]
        if table not in distributed:
            return [f"ALTER TABLE {alter[1]} {on}{rest}"]
        return [f"ALTER TABLE {table}_local {on}{rest}", f"ALTER TABLE {table} {on}{rest}"]
    drop = _DROP.match(text)
    if drop:
        kind, name = drop[1].upper(), drop[2].strip("`")
        names = [name, f"{name}_local"] if name in distributed else [name]
        return [f"DROP {kind} IF EXISTS {n} {on} SYNC" for n in names]
    truncate = _TRUNCATE.match(text)
    if truncate:
        return [f"TRUNCATE TABLE IF EXISTS {local(truncate[1].strip('`'))} {on} SYNC"]
    if _INSERT_SELECT.match(text):
        # One node reads every shard and writes through the Distributed table: a recompute
        # lands once, on the shards the table's sharding key picks; reads sum over shards.
        return [text]
    first = " ".join(text.split()[:4])
    raise ClusterSchemaError(
        f"migration {migration.version} ({migration.name}): `{first} ...` has no cluster form;"
        " add its steps on the _local tables to deploy/clickhouse/cluster.sql and record"
        f" version {migration.version} there"
    )


def _distributed(client: Any) -> set[str]:
    rows = client.query(
        "SELECT name FROM system.tables"
        " WHERE database = currentDatabase() AND engine = 'Distributed'"
    ).result_rows
    return {row[0] for row in rows}


def apply_cluster(client: Any, sql: str, cluster: str, body_ttl_days: int) -> list[int]:
    """Apply cluster.sql (`sql`) on `cluster`, then the migrations no version row records, each
    in its cluster form; returns the versions applied now. Idempotent like the single-node
    path: cluster.sql is all `IF NOT EXISTS` / `ADD COLUMN IF NOT EXISTS`, and duplicate version
    rows collapse (`schema_versions_local` is a ReplacingMergeTree by version)."""
    for statement in named(sql, cluster):
        client.command(statement, settings=SETTINGS)
    client.command(SCHEMA_VERSIONS)  # cluster.sql made it Distributed: IF NOT EXISTS keeps that
    applied = {row[0] for row in client.query("SELECT version FROM schema_versions").result_rows}
    distributed = _distributed(client)
    pending = [m for m in MIGRATIONS if m.version not in applied]
    # Every statement is given its cluster form before any runs: a refusal changes nothing.
    planned = [
        (m, [part for s in m.statements for part in cluster_form(m, s, cluster, distributed)])
        for m in pending
    ]
    done: list[int] = []
    for migration, parts in planned:
        for part in parts:
            client.command(part.replace("{body_ttl_days}", str(body_ttl_days)), settings=SETTINGS)
        client.insert(
            "schema_versions",
            [[migration.version, migration.name, datetime.now(UTC)]],
            column_names=["version", "name", "applied_at"],
            settings=SETTINGS,
        )
        done.append(migration.version)
    sync_body_ttl(client, body_ttl_days)  # finds Distributed tables only: leaves them alone
    return done


def cluster_behind(client: Any) -> list[int]:
    """On a cluster schema (a Distributed `comparisons`), the migration versions not recorded
    yet; on a single node, none. `Store.migrate` (the judge's and the dashboards' start) waits
    on these rather than apply a single-node migration to one node's Distributed tables."""
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = currentDatabase()"
        " AND name = 'comparisons'"
    ).result_rows
    if not engine or engine[0][0] != "Distributed":
        return []
    applied = {row[0] for row in client.query("SELECT version FROM schema_versions").result_rows}
    return [m.version for m in MIGRATIONS if m.version not in applied]
