"""Databases of their own in the session's chDB directory, dropped when a test is done with them.

chDB runs one embedded server per process; it starts when a store opens with none open and
stops when the last one closes, and each start loads every database of its directory (~25 ms
a database of our schema here). A session that kept the database of every test it ran spent
up to 4 s opening a store by its end; dropping each one afterwards keeps an open at ~50 ms.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from judge.config import StoreSettings
from judge.errors import JudgeError
from judge.store.schema import identifier
from judge.store.store import AsyncStore, Store


def new_url(chdb_dir: Path, prefix: str) -> str:
    return f"chdb://{chdb_dir}?database={prefix}_{uuid.uuid4().hex[:12]}"


def drop_database(store: Store) -> None:
    """Drop the database `store` works in (the store stays open on the directory). A store the
    test closed, or broke on purpose, keeps its database: that costs time, not a result."""
    try:
        with store._call("drop the test's database") as ch:
            name = ch.database
            ch.database = "default"
            ch.command(f"DROP DATABASE IF EXISTS {identifier(name)} SYNC")
    except JudgeError:
        pass


@contextmanager
def database_url(chdb_dir: Path, prefix: str) -> Iterator[str]:
    """The URL of a new database in `chdb_dir`, dropped afterwards if anything made it."""
    url = new_url(chdb_dir, prefix)
    yield url
    with Store.open(StoreSettings(url=url)) as opened:
        drop_database(opened)


@contextmanager
def fresh_store(chdb_dir: Path, prefix: str) -> Iterator[Store]:
    """A migrated store in a new database of `chdb_dir`, dropped afterwards."""
    with Store.open(StoreSettings(url=new_url(chdb_dir, prefix))) as opened:
        opened.migrate()
        try:
            yield opened
        finally:
            drop_database(opened)


@asynccontextmanager
async def fresh_async_store(chdb_dir: Path, prefix: str) -> AsyncIterator[AsyncStore]:
    """`fresh_store` for asyncio tests."""
    opened = await AsyncStore.open(StoreSettings(url=new_url(chdb_dir, prefix)))
    try:
        await opened.migrate()
        yield opened
    finally:
        try:
            await opened.run(drop_database, opened.store)
        finally:
            await opened.close()
