"""The judge's inserts as JSON columns (`judge.store.columns`) store what the Native insert
stores, value for value, and fall back to it for what JSON cannot carry."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from judge.config import JudgeSettings, StoreSettings
from judge.scoring import Scorer
from judge.store.columns import (
    FLOAT_COLUMNS,
    JSON_TEXT_COLUMNS,
    _native,
    call_row,
    document,
    send,
)
from judge.store.rows import CALL_COLUMNS, COMPARISON_FIELDS, PAIR_COLUMNS, comparison_row, insert
from judge.store.store import Store
from mirror.event_views import parse_shadow_pair_view
from mirror.events import ShadowPair, dump_event
from mirror.pricing import PriceTable
from tests.chdb import database_url
from tests.demo_mix import demo_pairs, deterministic_pairs


def insert_columns(
    ch: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], token: str
) -> None:
    """The store's two steps in one: the document, then the insert."""
    send(ch, table, columns, rows, document(columns, rows), token)


TABLES = {"calls": CALL_COLUMNS, "pairs": PAIR_COLUMNS, "comparisons": COMPARISON_FIELDS}


@pytest.fixture
def stores(chdb_dir: Path) -> Iterator[tuple[Store, Store]]:
    """Two databases of the same schema: one written the Native way, one as JSON columns."""
    with database_url(chdb_dir, "native") as native, database_url(chdb_dir, "json") as json:
        with Store.open(StoreSettings(url=native)) as a, Store.open(StoreSettings(url=json)) as b:
            a.migrate()
            b.migrate()
            yield a, b


def rows_of(store: Store, table: str) -> list[tuple[Any, ...]]:
    with store._call("read back") as ch:
        return list(ch.query(f"SELECT * EXCEPT inserted_at FROM {table} ORDER BY ALL").result_rows)


def write_both(
    stores: tuple[Store, Store], table: str, rows: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """`rows` written both ways; what each stored, asserted equal, returned."""
    columns, token = TABLES[table], uuid.uuid4().hex
    with stores[0]._call("native") as ch:
        insert(ch, table, columns, _native(columns, rows), token)
    with stores[1]._call("json") as ch:
        insert_columns(ch, table, columns, rows, token)
    native, json = rows_of(stores[0], table), rows_of(stores[1], table)
    assert repr(json) == repr(native)  # repr: a NaN equals itself
    return json


def mixed_pairs() -> list[tuple[bytes, ShadowPair]]:
    raw = [dump_event(pair) for pair in [*demo_pairs(400), *deterministic_pairs(200)]]
    return [(value, parse_shadow_pair_view(value)) for value in raw]


def test_the_schema_has_the_float_and_json_columns_this_module_knows(
    stores: tuple[Store, Store],
) -> None:
    with stores[1]._call("columns") as ch:
        found = ch.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
            " AND table IN ('calls', 'pairs', 'comparisons')"
        ).result_rows
    floats = {name for name, kind in found if kind in ("Float64", "Nullable(Float64)")}
    assert floats == FLOAT_COLUMNS
    assert JSON_TEXT_COLUMNS <= {name for name, kind in found if "String" in kind}


def test_a_judged_batch_is_stored_as_the_native_insert_stores_it(
    stores: tuple[Store, Store],
) -> None:
    pairs = mixed_pairs()
    scorer = Scorer(JudgeSettings(), {}, PriceTable(), None)
    comparisons = asyncio.run(scorer.score_many([pair for _, pair in pairs]))
    calls = write_both(stores, "calls", [call_row(pair.call) for _, pair in pairs])
    assert len(calls) == len(pairs)
    assert any(row[18].startswith('{"model":') for row in calls)  # request bodies as JSON text
    stored = write_both(
        stores,
        "pairs",
        [
            (p.call.call_id, p.migration, p.arm.name, p.arm.kind, p.call.captured_at, 1, raw)
            for raw, p in pairs
        ],
    )
    assert sorted(row[-1].encode() for row in stored) == sorted(raw for raw, _ in pairs)
    write_both(stores, "comparisons", [comparison_row(c) for c in comparisons])


def test_a_message_is_stored_byte_for_byte_and_a_request_as_its_compact_text(
    stores: tuple[Store, Store],
) -> None:
    raw, pair = mixed_pairs()[0]
    spaced = b'{ "a" :\n [1, 2.50, "\\u00e9\\"}"] }'
    row = (pair.call.call_id, "m", "arm", "candidate", pair.call.captured_at, 1, spaced)
    assert write_both(stores, "pairs", [row])[0][-1].encode() == spaced
    request = {"messages": [{"role": "user", "content": 'é "quoted" \n'}], "n": 2**40}
    written = write_both(stores, "calls", [(*call_row(pair.call)[:18], request, "é")])
    assert written[0][18] == orjson.dumps(request).decode()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({11: math.nan}, id="nan latency"),
        pytest.param({12: math.inf}, id="infinite ttft"),
        pytest.param({18: {"n": 2**70}}, id="an integer past 64 bits in the request"),
        pytest.param({19: "lone \ud800 surrogate"}, id="a lone surrogate"),
    ],
)
def test_what_json_cannot_carry_goes_the_native_way(
    stores: tuple[Store, Store], change: dict[int, Any]
) -> None:
    _, pair = mixed_pairs()[1]
    row = list(call_row(pair.call))
    for index, value in change.items():
        row[index] = value
    if 19 in change:  # the Native insert cannot encode it either: both refuse it alike
        with pytest.raises(Exception) as native, stores[0]._call("native") as ch:
            insert(ch, "calls", CALL_COLUMNS, _native(CALL_COLUMNS, [tuple(row)]), "t")
        with pytest.raises(type(native.value)), stores[1]._call("json") as ch:
            insert_columns(ch, "calls", CALL_COLUMNS, [tuple(row)], "t")
        return
    stored = write_both(stores, "calls", [tuple(row)])
    value = stored[0][next(iter(change))]
    if isinstance(value, float):
        assert not math.isfinite(value)


def test_a_batch_sent_again_with_its_token_is_stored_once(stores: tuple[Store, Store]) -> None:
    pairs = mixed_pairs()[:50]
    rows = [call_row(pair.call) for _, pair in pairs]
    with stores[1]._call("json") as ch:
        insert_columns(ch, "calls", CALL_COLUMNS, rows, "same-token")
        insert_columns(ch, "calls", CALL_COLUMNS, rows, "same-token")
        count = ch.command("SELECT count() FROM calls")
    assert int(count) == 50
