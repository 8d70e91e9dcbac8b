"""The judge's error tree. Retry loops ask an error's `retriable` flag, not its type.

ClickHouse (clickhouse-connect over HTTP, or chDB in-process) errors are translated here, at
the store's boundary, by `store_error()`: a caller never sees a clickhouse-connect or chDB
exception, only a `StoreError` whose `__cause__` is the original.

Store errors are sorted by what fixes them. Time or an operator fixes a full disk, too many
parts, a memory limit, a timeout, an unreachable server, a store directory another process
holds, or a table someone dropped: those are `StoreUnavailableError`s (`retriable`, with a
`condition` for metrics and health), and the judge waits on them with the batch in hand. Only
what the data fixes (the store refusing the rows themselves) is a plain `StoreError`, and only
those rows go to the DLQ.
"""

from __future__ import annotations

from mirror.errors import SerializationError

__all__ = [
    "JudgeError",
    "SerializationError",
    "StoreAccessError",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "StoreMissingError",
    "StoreUnavailableError",
    "store_error",
]


class JudgeError(Exception):
    """Base of every error the judge raises on purpose."""

    retriable = False


class StoreError(JudgeError):
    """The store refused a statement: bad SQL, a type mismatch, a missing table. Not retriable:
    the same statement would fail again (fix the code or run `shadowjudge migrate`)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        #: The ClickHouse error code, when the store gave one (e.g. 62 SYNTAX_ERROR).
        self.code = code


class StoreUnavailableError(StoreError):
    """The store cannot take the write now (unreachable, overloaded, full, locked, or its
    schema broken under the judge); the same write may succeed later."""

    retriable = True

    def __init__(self, message: str, *, code: int | None = None, condition: str = "") -> None:
        super().__init__(message, code=code)
        #: One word for metrics and /healthz: unreachable, overloaded, full, locked, schema.
        self.condition = condition or "unreachable"


class StoreLockedError(StoreUnavailableError):
    """An embedded (chDB) store directory is held by another process."""


class StoreClosedError(StoreError):
    """The store was closed; nothing more will be read or written through it."""


class StoreMissingError(StoreError):
    """An embedded (chDB) store directory does not exist, and the caller only reads: nothing
    has been recorded there (it is not created, so a read leaves no trace)."""


class StoreAccessError(StoreError):
    """An embedded (chDB) store directory cannot be written by this user (permissions, a
    read-only file system, a file in its place): the setting or the machine needs fixing."""


#: ClickHouse error codes of a full disk.
FULL_CODES = frozenset({243})  # NOT_ENOUGH_SPACE
#: Codes of a schema or access broken under a running judge: an operator fixes them (or runs
#: `shadowjudge migrate`), and the rows are kept until then rather than dead-lettered.
SCHEMA_CODES = frozenset(
    {
        16,  # NO_SUCH_COLUMN_IN_TABLE
        47,  # UNKNOWN_IDENTIFIER
        60,  # UNKNOWN_TABLE
        81,  # UNKNOWN_DATABASE
        164,  # READONLY
        291,  # DATABASE_ACCESS_DENIED
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)
#: ClickHouse error codes that describe a passing condition of the server, not the statement.
RETRIABLE_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        173,  # CANNOT_ALLOCATE_MEMORY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (replica lost its Keeper session)
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
    }
)


def store_error(exc: BaseException, doing: str) -> StoreError:
    """The `StoreError` for a third-party exception; the caller raises it `from exc`.

    `doing` says what the store was doing ("insert into comparisons"), for the message.
    """
    # Imported here: clickhouse_connect pulls in numpy & co; the error tree stays light.
    from clickhouse_connect.driver.exceptions import Error, OperationalError

    code = getattr(exc, "code", None)
    code = code if isinstance(code, int) else None
    text = str(exc)
    message = f"{doing}: {text}"
    if "Another server instance in same directory is already running" in text:
        return StoreLockedError(
            f"{doing}: the store directory is held by another process (another `shadowjudge "
            "run`, `judge` or `dashboards` on the same chdb:// directory?)",
            code=code,
            condition="locked",
        )
    if code in FULL_CODES or "No space left on device" in text:
        return StoreUnavailableError(message, code=code, condition="full")
    if code in SCHEMA_CODES:
        return StoreUnavailableError(
            f"{message} (fix the store, or run `shadowjudge migrate`)",
            code=code,
            condition="schema",
        )
    if code in RETRIABLE_CODES:
        return StoreUnavailableError(message, code=code, condition="overloaded")
    if isinstance(exc, OperationalError):
        # clickhouse-connect's transport failure (refused, reset, timeout).
        return StoreUnavailableError(message, code=code)
    if isinstance(exc, Error):
        if "has been closed" in str(exc):
            return StoreClosedError(message, code=code)
        return StoreError(message, code=code)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return StoreUnavailableError(message)
    return StoreError(message, code=code)
