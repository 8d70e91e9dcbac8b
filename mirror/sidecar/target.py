"""The request target's path, normalised before routing (RFC 3986 5.2.4).

Dot-segments are removed, percent-encoded dots (`%2e`, `%2E`) counted as dots, because the
provider may decode them and resolve the path itself: `/openai/%2e%2e/x` must not reach the
provider as anything but the path the sidecar routed. A `..` that would climb
above the path's root is refused (None) rather than clamped: the sidecar prefixes the
provider's base path, and a path that tries to leave it is no path an SDK sends.
"""

from __future__ import annotations

_DOT = frozenset({b".", b"%2e"})
_DOT_DOT = frozenset({b"..", b".%2e", b"%2e.", b"%2e%2e"})


def remove_dot_segments(path: bytes) -> bytes | None:
    """`path` (origin-form, starting with `/`) without dot-segments; None when it climbs
    above its root."""
    if b"." not in path and b"%" not in path:
        return path  # the common case: nothing to remove
    segments = path.split(b"/")
    last = len(segments) - 1
    out: list[bytes] = []
    for i in range(1, len(segments)):
        segment = segments[i]
        lower = segment.lower()
        if lower in _DOT:
            if i == last:
                out.append(b"")  # "/a/." is "/a/"
            continue
        if lower in _DOT_DOT:
            if not out:
                return None
            out.pop()
            if i == last:
                out.append(b"")
            continue
        out.append(segment)
    return b"/" + b"/".join(out)
