"""Routing: which configured provider (`Upstream`) a request goes to, and on which path.

`/<provider>/v1/...` goes to that configured provider; any other path goes to the default
provider of its dialect — Anthropic when the path is `/v1/messages...` or the request carries
`anthropic-version`, OpenAI otherwise. A path whose dot-segments would climb out of its
`/<provider>/` prefix does not keep its route (`keeps_prefix`; `mirror.sidecar.proxy` refuses
it with 400), and a request the sidecar refuses is answered in the error shape of the provider
it was meant for (`kind_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mirror.config import ProviderSettings
from mirror.events import ProviderKind
from mirror.sidecar.request import Request
from mirror.sidecar.upstream import Origin

ANTHROPIC_VERSION = b"anthropic-version"


def default_upstreams(
    providers: Mapping[str, ProviderSettings], chosen: Mapping[ProviderKind, str]
) -> dict[ProviderKind, str]:
    defaults: dict[ProviderKind, str] = {}
    for kind in ProviderKind:
        if kind in chosen:
            defaults[kind] = chosen[kind]
        elif kind.value in providers and providers[kind.value].kind is kind:
            defaults[kind] = kind.value
        else:
            named = [name for name, p in providers.items() if p.kind is kind]
            if named:
                defaults[kind] = named[0]
    return defaults


@dataclass(frozen=True, slots=True)
class Upstream:
    """A provider as the wire sees it: where to connect and what to put in the request head."""

    name: str
    kind: ProviderKind
    origin: Origin
    host: bytes  # the Host header
    base_path: bytes  # prefixed to the app's path

    @classmethod
    def of(cls, name: str, provider: ProviderSettings) -> Upstream:
        parts = urlsplit(provider.base_url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        return cls(
            name=name,
            kind=provider.kind,
            origin=Origin(parts.scheme, host, port),
            host=parts.netloc.rpartition("@")[2].encode("idna"),
            base_path=parts.path.rstrip("/").encode(),
        )


def route(
    upstreams: dict[str, Upstream],
    defaults: dict[ProviderKind, str],
    path: bytes,
    anthropic_hint: bool,
) -> tuple[Upstream | None, bytes]:
    first, _, rest = path[1:].partition(b"/")
    if rest and first:
        named = upstreams.get(first.decode("latin-1"))
        if named is not None:
            return named, path[len(first) + 1 :]
    if path.startswith(b"/v1/messages") or anthropic_hint:
        kind = ProviderKind.ANTHROPIC
    else:
        kind = ProviderKind.OPENAI
    name = defaults.get(kind)
    return (upstreams[name] if name in upstreams else None), path


def keeps_prefix(upstreams: dict[str, Upstream], raw_path: bytes, path: bytes) -> bool:
    """A path that named a provider (`/<provider>/...`) still does once normalised."""
    first, _, rest = raw_path[1:].partition(b"/")
    if not first or first.decode("latin-1") not in upstreams:
        return True
    return path.startswith(b"/" + first + b"/")


def kind_for(upstreams: dict[str, Upstream], request: Request) -> ProviderKind:
    """The provider kind a request was meant for, as far as it was read."""
    path = request.target.partition(b"?")[0]
    first = path[1:].partition(b"/")[0].decode("latin-1")
    named = upstreams.get(first)
    if named is not None:
        return named.kind
    anthropic = path.startswith(b"/v1/messages") or any(
        name.lower() == ANTHROPIC_VERSION for name, _ in request.headers
    )
    return ProviderKind.ANTHROPIC if anthropic else ProviderKind.OPENAI
