"""What a command checks before it starts anything, so the failures a newcomer meets first are
one line naming the setting and what to do, within a second of the start — not a process that
logs, then spins or dies later with a library's message.

- The chDB directory (`store.url`): claimed for the process (`judge.store.claim`), so a second
  `run` on it stops at once; writable; and, for the commands that only read, existing — they
  create nothing.
- The Kafka brokers (`bus.url`) and the ClickHouse server (`store.url`) answer a TCP connect.
  Only at start: an outage after it is waited out by the roles, as before.
- A migration named on the command line exists, in the settings or in the store.

Light on purpose: it runs before the roles' modules are imported.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from judge.errors import StoreAccessError, StoreError, StoreLockedError, StoreMissingError
from judge.store.claim import DirectoryClaim, chdb_directory, claim
from mirror.config import parse_host_port
from mirror.errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from dashboards.settings import Settings
    from judge.store.store import Store

#: Seconds all the addresses of one probe may take together (each connect gets what is left).
PROBE_S = 1.5


class UnknownMigrationError(ConfigError):
    """The migration named on the command line is in neither the settings nor the store."""


def safe_url(url: str) -> str:
    """`url` with its password hidden, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def claim_store(settings: Settings, *, create: bool) -> DirectoryClaim | None:
    """Claim the chDB directory for this process (None for a server or `chdb://memory`)."""
    path = chdb_directory(settings.store.url)
    if path is None or path == "memory":
        return None
    try:
        return claim(Path(path), create=create)
    except StoreError as exc:
        raise ConfigError(f"store.url: {settings.store.url}: {exc}") from exc


def probe_store(settings: Settings) -> None:
    """A ClickHouse server in `store.url` answers a connect (nothing to do for chDB)."""
    parts = urlsplit(settings.store.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (8443 if parts.scheme == "https" else 8123)
    failed = _unreachable([(parts.hostname, port)])
    if failed:
        raise ConfigError(
            f"store.url: {safe_url(settings.store.url)}: no ClickHouse server answers at"
            f" {failed}: start it, or fix store.url"
        )


def probe_bus(settings: Settings) -> str | None:
    """Why no Kafka broker of `bus.url` answers a connect, or None when one does (or the bus is
    in process)."""
    if settings.bus.is_memory:
        return None
    addresses = [
        parse_host_port(address, "bus.url") for address in settings.bus.bootstrap_servers.split(",")
    ]
    failed = _unreachable(addresses)
    if failed is None:
        return None
    return f"bus.url: {safe_url(settings.bus.url)}: no Kafka broker answers at {failed}"


def require_bus(settings: Settings) -> None:
    problem = probe_bus(settings)
    if problem:
        raise ConfigError(f"{problem}: start it, or fix bus.url")


def _unreachable(addresses: Iterable[tuple[str, int]]) -> str | None:
    """None when one of the addresses takes a connection; else each with its reason."""
    deadline = time.monotonic() + PROBE_S
    reasons = []
    for host, port in addresses:
        left = max(0.05, deadline - time.monotonic())
        try:
            with socket.create_connection((host, port), timeout=left):
                return None
        except TimeoutError:
            reasons.append(f"{host}:{port} (no answer in {left:.1f} s)")
        except socket.gaierror:
            reasons.append(f"{host}:{port} (unknown host)")
        except OSError as exc:
            reasons.append(f"{host}:{port} ({(exc.strerror or str(exc)).lower()})")
    return ", ".join(reasons)


def open_for_reading(settings: Settings) -> Store:
    """The store, for a command that only reads it: nothing is created, and a missing, held or
    unreachable store is one line naming `store.url`."""
    from judge.store.store import Store

    probe_store(settings)
    try:
        return Store.open(settings.store, create=False)
    except StoreLockedError as exc:
        raise ConfigError(
            f"store.url: {settings.store.url}: {exc}; or ask that process's dashboards:"
            " --url http://HOST:PORT"
        ) from exc
    except (StoreMissingError, StoreAccessError) as exc:
        raise ConfigError(f"store.url: {settings.store.url}: {exc}") from exc


def check_migration(name: str, settings: Settings, stored: Callable[[], Iterable[str]]) -> None:
    """Refuse a migration name found in neither the settings nor `stored()` (the store's names,
    or the running process's, asked only when the settings do not have it), listing the known
    ones."""
    configured = [m.name for m in settings.migrations]
    if name in configured:
        return
    found = list(stored())
    if name in found:
        return
    known = sorted(set(configured) | set(found))
    listed = (
        f"known: {', '.join(known)}"
        if known
        else "none is configured (migrations: in the settings) or stored yet"
    )
    raise UnknownMigrationError(f"--migration {name}: no migration of that name; {listed}")


def names_from_api(url: str, headers: Mapping[str, str]) -> list[str]:
    """The migrations a running process's store holds, from its dashboards' API."""
    import httpx

    answer = httpx.get(
        f"{url}/api/v1/migrations", params={"window": "all"}, headers=headers, timeout=60
    )
    if answer.status_code != 200:
        raise ConfigError(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
    return [str(m["migration"]) for m in answer.json()["migrations"]]


def ask_dashboards(
    settings: Settings,
    url: str | None,
    path: str,
    params: Mapping[str, str | int] | None = None,
    timeout: float = 60,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[httpx.Response | None, str, dict[str, str]]:
    """GET `path` from the dashboards at `url` (`--url`), else at the local address of the
    settings: the answer (None when nothing answers locally: the caller reads the store
    itself), the address asked and the headers sent (the token of `dashboards.token_env`).
    With a `body`, POST it as JSON instead; `headers` are sent besides the token. Nothing
    answering at a `--url` given is a ConfigError naming it."""
    import httpx

    base = url or f"http://{settings.dashboards.listen}"
    token = settings.dashboards.token()
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    headers = {**sent, **(headers or {})}
    try:
        if body is None:
            answer = httpx.get(f"{base}{path}", params=params, headers=headers, timeout=timeout)
        else:
            answer = httpx.post(
                f"{base}{path}", params=params, json=body, headers=headers, timeout=timeout
            )
    except httpx.TransportError as exc:
        if url:
            raise ConfigError(f"--url {url}: {exc}") from exc
        return None, base, headers
    return answer, base, headers
