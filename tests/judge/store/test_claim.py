"""Claiming a chDB directory: one process per directory, said before the engine loads, and
nothing created by a caller that only reads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from judge.config import StoreSettings
from judge.errors import StoreAccessError, StoreLockedError, StoreMissingError
from judge.store.claim import LOCK_FILE, chdb_directory, claim
from judge.store.store import Store

HOLD = (
    "import sys\n"
    "from pathlib import Path\n"
    "from judge.store.claim import claim\n"
    "held = claim(Path(sys.argv[1]), create=True)\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


@contextmanager
def holding(code: str, directory: Path) -> Iterator[int]:
    """A process running `code` on `directory` until the block ends; its pid."""
    with subprocess.Popen(
        [sys.executable, "-c", code, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            yield process.pid
        finally:
            process.kill()


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A directory claimed by another process, and that process's pid."""
    with holding(HOLD, tmp_path / "store") as pid:
        yield tmp_path / "store", pid


def test_claims_are_counted_within_a_process(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "store"
    first = claim(directory, create=True)
    second = claim(directory, create=True)
    assert (directory / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    first.release()
    first.release()  # once only
    second.release()
    with claim(directory, create=False):  # free again
        pass


def test_a_directory_another_process_holds_names_it(other_process: tuple[Path, int]) -> None:
    directory, pid = other_process
    with pytest.raises(StoreLockedError) as found:
        claim(directory, create=True)
    message = str(found.value)
    assert f"the directory {directory} is held by process {pid}" in message
    assert message.endswith("stop it, or set store.url to another directory")
    assert found.value.retriable
    with pytest.raises(StoreLockedError):  # and no engine is loaded to find it out
        Store.open(StoreSettings(url=f"chdb://{directory}"))


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "var" / "store"
    with pytest.raises(StoreMissingError) as found:
        Store.open(StoreSettings(url=f"chdb://{directory}"), create=False)
    assert str(found.value) == (
        f"no store at {directory} (nothing recorded yet: start `shadowjudge run`)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_place_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("")
    with pytest.raises(StoreAccessError, match="is not a directory"):
        claim(tmp_path / "store", create=True)
    with pytest.raises(StoreAccessError, match=r"cannot write to the directory .*Not a directory"):
        claim(tmp_path / "store" / "below", create=True)


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("chdb:///abs/dir", "/abs/dir"),
        ("chdb:///./var/x", "./var/x"),
        ("chdb://var/x?database=d", "var/x"),
        ("chdb://memory", "memory"),
        ("http://u:p@host:8123/db", None),
    ],
)
def test_chdb_directory(url: str, directory: str | None) -> None:
    assert chdb_directory(url) == directory
