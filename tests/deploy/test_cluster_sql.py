"""deploy/clickhouse/cluster.sql and `shadowjudge migrate --cluster NAME`, with no cluster here.

The chDB run (parse as written, apply in single-node form, write, replay, resend, merge) is in
`tests.deploy.cluster_single_node`, in a process of its own; this module asserts what it found,
checks what the file must say for a real cluster, and the cluster forms of the migrations.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from dashboards.command.main import main
from judge.store.cluster import ClusterSchemaError, cluster_form, named, statements
from judge.store.schema import MIGRATIONS, Migration

ROOT = Path(__file__).resolve().parents[2]
CLICKHOUSE = ROOT / "deploy" / "clickhouse"
SQL = (CLICKHOUSE / "cluster.sql").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("cluster")
    done = subprocess.run(
        [sys.executable, "-m", "tests.deploy.cluster_single_node", str(workdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_every_statement_parses_as_written(found: dict[str, Any]) -> None:
    assert found["statements"] == len(statements(SQL)) > 20
    assert found["clusters"] == [["shadowjudge", 1, 1]]  # the Distributed tables' one shard


def test_migrate_cluster_builds_the_single_node_schema_on_every_node(found: dict[str, Any]) -> None:
    assert found["versions"] == found["single_versions"] == [m.version for m in MIGRATIONS]
    assert found["recorded_again"] == []  # a second run applies nothing
    # Every DDL statement went ON CLUSTER; what did not: the version rows, the recompute (once,
    # through the Distributed tables) and the store's own CREATE of schema_versions, a no-op.
    assert set(found["not_on_cluster"]) <= {
        "INSERT INTO schema_versions",
        "CREATE TABLE IF NOT EXISTS schema_versions",
        "INSERT INTO comparison_stats_hourly",
    }
    engines = found["engines"]
    for name, engine in engines.items():
        if engine == "Distributed":
            assert engines[f"{name}_local"].endswith("MergeTree"), name
    assert engines["comparison_stats_hourly_mv"] == "MaterializedView"
    assert found["column_mismatches"] == []


def test_writes_count_once_and_the_aggregates_agree_with_one_node(found: dict[str, Any]) -> None:
    # 400 pairs in two overlapping batches, then all of them again: nothing twice.
    assert found["written"] == {"cluster": [250, 150, 0], "single": [250, 150, 0]}
    assert found["counts"] == {"cluster": 400, "single": 400}
    assert found["pairs_counted"] == 400
    assert found["aggregates_differ"] == []
    assert found["verify_stats"] == []


def test_a_resent_block_is_dropped_and_a_duplicate_collapses(found: dict[str, Any]) -> None:
    assert found["after_retry"] == 1  # same insert_deduplication_token: dropped
    # "a", "a", "b": the resent "a" is dropped in the table and the view; "b", a second
    # writer's copy, lands (the view counts it: the store's existence check is what prevents
    # that in practice) and merges away in the ReplacingMergeTree.
    assert (found["dup_raw"], found["dup_counted"], found["dup_merged"]) == (2, 2, 1)


def test_the_file_keeps_a_key_on_one_shard_and_the_view_on_the_shards() -> None:
    engines = dict(
        re.findall(
            r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER '\{cluster\}' AS \w+\s+ENGINE = (.+)", SQL
        )
    )
    for table in ("calls", "pairs", "comparisons", "reviews"):
        assert engines[table].endswith(f"{table}_local, cityHash64(call_id));"), table
    for engine in re.findall(r"ENGINE = (Replicated\w*)(.*)", SQL):
        assert engine[1].startswith("('/clickhouse/tables/{uuid}/{shard}', '{replica}'"), engine
        assert engine[1].endswith(")"), engine
    view = next(s for s in statements(SQL) if "MATERIALIZED VIEW" in s)
    assert "TO comparison_stats_hourly_local AS" in view and "FROM comparisons_local" in view
    every = named(SQL, "prod-1")
    assert all("'{cluster}'" not in s for s in every)
    assert sum("ON CLUSTER 'prod-1'" in s for s in every) == len(every) - 1  # all but the INSERT


def test_the_example_server_config_replicates_internally_and_dedups_views() -> None:
    cluster = ElementTree.parse(CLICKHOUSE / "config.d" / "cluster.xml").getroot()
    shards = cluster.findall("./remote_servers/shadowjudge/shard")
    assert len(shards) == 2
    assert all(s.findtext("internal_replication") == "true" for s in shards)
    macros = cluster.find("macros")
    assert macros is not None and {m.tag for m in macros} >= {"cluster", "shard", "replica"}
    profile = ElementTree.parse(CLICKHOUSE / "users.d" / "shadowjudge.xml").getroot()
    found = profile.find("./profiles/shadowjudge")
    assert found is not None
    settings = {e.tag: e.text for e in found}
    assert settings["distributed_foreground_insert"] == "1"
    assert settings["deduplicate_blocks_in_dependent_materialized_views"] == "1"
    assert settings["insert_deduplicate"] == "1"


def test_cluster_forms_of_migration_statements() -> None:
    m = Migration(9, "example", ())
    dist = {"comparisons", "comparison_stats_hourly"}
    assert cluster_form(m, "CREATE VIEW IF NOT EXISTS v AS SELECT 1", "c", dist) == [
        "CREATE VIEW IF NOT EXISTS v ON CLUSTER 'c' AS SELECT 1"
    ]
    assert cluster_form(m, "ALTER TABLE comparisons ADD COLUMN x UInt8", "c", dist) == [
        "ALTER TABLE comparisons_local ON CLUSTER 'c' ADD COLUMN x UInt8",
        "ALTER TABLE comparisons ON CLUSTER 'c' ADD COLUMN x UInt8",
    ]
    view = (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO comparison_stats_hourly AS\n"
        "SELECT a FROM comparisons ARRAY JOIN b"
    )
    assert cluster_form(m, view, "c", dist) == [
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv ON CLUSTER 'c' TO comparison_stats_hourly_local"
        " AS\nSELECT a FROM comparisons_local ARRAY JOIN b"
    ]
    assert cluster_form(m, "TRUNCATE TABLE comparison_stats_hourly", "c", dist) == [
        "TRUNCATE TABLE IF EXISTS comparison_stats_hourly_local ON CLUSTER 'c' SYNC"
    ]
    assert cluster_form(m, "DROP VIEW IF EXISTS mv", "c", dist) == [
        "DROP VIEW IF EXISTS mv ON CLUSTER 'c' SYNC"
    ]
    with pytest.raises(ClusterSchemaError, match="migration 9 \\(example\\)"):
        cluster_form(m, "OPTIMIZE TABLE comparisons FINAL", "c", dist)
    with pytest.raises(ClusterSchemaError, match="not a cluster name"):
        named(SQL, "x' OR 1")


def test_migrate_cluster_refuses_an_embedded_store_and_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "shadowjudge.yaml"
    config.write_text(f'store: "chdb://{tmp_path / "store"}"\n')
    assert main(["-c", str(config), "migrate", "--cluster", "c"]) == 2
    assert "store.url is a chdb:// directory" in capsys.readouterr().err
    config.write_text('store: "http://u:p@127.0.0.1:1/db"\n')
    missing = tmp_path / "nowhere.sql"
    assert (
        main(["-c", str(config), "migrate", "--cluster", "c", "--cluster-sql", str(missing)]) == 2
    )
    assert f"--cluster-sql {missing}" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # refused before anything was made
