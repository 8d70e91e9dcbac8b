"""Deterministic ids, timestamps and noise, derived from a hash of the request.

Everything a real provider makes random (ids, ``created``, request ids, the ``obfuscation``
padding of OpenAI stream chunks) comes from ``Seed``: the SHA-256 of the path and the raw
body bytes. Two identical requests therefore get byte-identical answers.
"""

from __future__ import annotations

import hashlib
import random

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HEX = "0123456789abcdef"
_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z: timestamps fall in the year after it


class Seed:
    """The hash of one request and the values derived from it."""

    __slots__ = ("digest",)

    def __init__(self, path: str, body: bytes) -> None:
        self.digest = hashlib.sha256(path.encode() + b"\0" + body).digest()

    def token(self, label: str, length: int, alphabet: str = BASE62) -> str:
        """``length`` characters of ``alphabet``, a pure function of the request and label."""
        out: list[str] = []
        counter = 0
        base = len(alphabet)
        while len(out) < length:
            block = hashlib.blake2b(
                self.digest + label.encode() + counter.to_bytes(4, "big"), digest_size=32
            ).digest()
            number = int.from_bytes(block)
            for _ in range(40):  # 256 bits hold 40+ base-62 digits with room to spare
                number, digit = divmod(number, base)
                out.append(alphabet[digit])
            counter += 1
        return "".join(out[:length])

    def created(self) -> int:
        """A Unix timestamp in 2025, stable for the request."""
        return _EPOCH + int.from_bytes(self.digest[:4]) % 31_536_000

    def rng(self, label: str) -> random.Random:
        return random.Random(int.from_bytes(self.digest[8:16]) ^ hash_label(label))


def hash_label(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest())
