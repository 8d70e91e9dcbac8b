"""Deterministic hash sampling: which captured calls a migration replays.

A decision is a pure function of (salt, key, rate): a 64-bit BLAKE2b hash of
`salt + "\\0" + key`, read as an unsigned integer and scaled to [0, 1), is compared with the
rate. So every runner process, a restarted runner and a replay of the same record agree on
which calls are in — without any shared state — and the decision does not depend on Python's
per-process `hash()` randomisation or on the Python version.

Salts keep decisions independent where they should be: the salt is the migration's name, so two
migrations at 10% select different (independent) 10%s; the noise arm uses
`arm_salt(migration, "noise")`, so which sampled calls also go to the noise arm is independent
of whether the call was sampled. Raising a rate only adds calls: a call selected at 10% is
still selected at 20%, because the hash point does not move.

The key is the call id by default. A sticky key (`segment.<label>`, e.g. `segment.user`) samples
by that label's value instead, so all the calls of one user (or session) are in or out together
— useful when a migration is judged per conversation rather than per call.
"""

from __future__ import annotations

import hashlib
import math

from mirror.events import CapturedCall

STICKY_PREFIX = "segment."
_SCALE = float(1 << 64)


def hash_point(key: str, *, salt: str) -> float:
    """Where `key` falls in [0, 1) for `salt`: stable across processes and Python versions."""
    digest = hashlib.blake2b(
        salt.encode("utf-8", "surrogatepass") + b"\0" + key.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


def selected(key: str, *, salt: str, rate: float) -> bool:
    """True when `key` is in the `rate` share of keys for `salt` (rate 0: never; 1: always)."""
    if math.isnan(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"sampling rate must be between 0 and 1, got {rate!r}")
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return hash_point(key, salt=salt) < rate


def arm_salt(migration: str, arm: str) -> str:
    """The salt of a per-arm decision (the noise arm's), independent of the migration's own."""
    return f"{migration}/{arm}"


def sampling_key(call: CapturedCall, sticky: str | None) -> str:
    """The key a call is sampled by.

    `sticky` is None (the call id: each call decided on its own) or `segment.<label>` (that
    segment label's value). A call without that label — or with an empty value — falls back to
    its call id, so it is sampled on its own at the same rate rather than dropped or lumped
    together with every other unlabelled call into one all-or-nothing bucket.
    The value is prefixed with the label so a label value can never collide with a call id.
    """
    if sticky is None:
        return call.call_id
    if not sticky.startswith(STICKY_PREFIX) or len(sticky) == len(STICKY_PREFIX):
        raise ValueError(f"sticky must be 'segment.<label>', got {sticky!r}")
    label = sticky[len(STICKY_PREFIX) :]
    value = call.segment.get(label)
    if not value:
        return call.call_id
    return f"{sticky}={value}"
