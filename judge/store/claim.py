"""A process's claim on an embedded (chDB) store directory.

chDB allows one process per directory, and a second one learns it late and badly: after
loading the engine (~0.3 s, ~300 MB), as `Error initializing EmbeddedServer: . (BAD_ARGUMENTS)`.
So every opening of a `chdb://` directory first claims it: an exclusive, non-blocking `flock`
on `<dir>/shadowjudge.lock`, holding the claimant's pid, kept until the store is closed.
Taking it costs a system call, so a command can claim the directory before it loads anything
(`run` does, before its roles start) and say at once who holds it. ClickHouse's own lock on
`<dir>/status` is probed too, for a process that opened the directory without us (a script
using chDB directly, an older shadowjudge).

Claims are counted per process: the command's own claim and the judge's store share one lock,
released when the last of them is. A directory that does not exist is created only when the
caller asks (`create=True`): the commands that only read must leave no trace.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from judge.errors import StoreAccessError, StoreLockedError, StoreMissingError

LOCK_FILE = "shadowjudge.lock"

_lock = threading.Lock()
#: Directories this process has claimed: resolved path -> (descriptor, claims).
_held: dict[Path, tuple[int, int]] = {}


def chdb_directory(url: str) -> str | None:
    """The directory of a `chdb://` URL (`memory` for the in-memory engine), None for a
    server. `chdb:///./var/x` and `chdb://var/x` both mean the relative directory var/x."""
    parts = urlsplit(url)
    if parts.scheme != "chdb":
        return None
    path = parts.netloc + parts.path
    return path[1:] if path.startswith(("/./", "/../")) else path


class DirectoryClaim:
    """This process's hold on a chDB directory; `release()` gives it up (once)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._released = False

    def release(self) -> None:
        with _lock:
            if self._released:
                return
            self._released = True
            fd, count = _held[self.directory]
            if count > 1:
                _held[self.directory] = (fd, count - 1)
                return
            del _held[self.directory]
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> DirectoryClaim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def claim(directory: Path, *, create: bool) -> DirectoryClaim:
    """Claim `directory` for this process, creating it when `create`.

    Raises `StoreMissingError` (it does not exist and `create` is false), `StoreAccessError`
    (this user cannot write there) or `StoreLockedError` (another process holds it).
    """
    directory = directory.resolve()
    with _lock:
        if directory in _held:
            fd, count = _held[directory]
            _held[directory] = (fd, count + 1)
            return DirectoryClaim(directory)
        if not directory.is_dir():
            if directory.exists():
                raise StoreAccessError(f"{directory} is not a directory")
            if not create:
                raise StoreMissingError(
                    f"no store at {directory} (nothing recorded yet: start `shadowjudge run`)"
                )
        try:
            if create:
                directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreAccessError(
                f"cannot write to the directory {directory} ({exc.strerror}): give this user"
                " write access to it, or set store.url to another directory"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StoreAccessError(f"cannot lock {directory}: {exc.strerror}") from exc
            raise _held_error(directory, holder) from exc
        if status_held(directory):
            os.close(fd)
            raise _held_error(directory, None)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[directory] = (fd, 1)
        return DirectoryClaim(directory)


def _held_error(directory: Path, holder: int | None) -> StoreLockedError:
    who = f"process {holder}" if holder else "another process"
    return StoreLockedError(
        f"the directory {directory} is held by {who} (another `shadowjudge run`, `judge` or"
        " `dashboards` on it? chDB allows one process per directory): stop it, or set"
        " store.url to another directory",
        condition="locked",
    )


def _holder(fd: int) -> int | None:
    """The pid the holder wrote in the lock file, if it did."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def status_held(directory: Path) -> bool:
    """Whether a ClickHouse engine (chDB) runs on the directory: it keeps an exclusive flock on
    `<dir>/status` for as long as it does."""
    try:
        fd = os.open(directory / "status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
