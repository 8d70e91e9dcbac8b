"""Regenerate ``corpus.jsonl.gz`` from text that ships with CPython 3.11 (PSF License 2.0).

Run from the repository root with the project's Python 3.11:
``.venv/bin/python tests/data/embeddings/make_corpus.py``. The output is deterministic for a
given CPython build (the docstrings are read from the running interpreter's standard library).
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import pydoc_data.topics
import random
import re
import sys
from pathlib import Path

# Standard-library modules left out of the "library" segment: tests, GUIs, platform-only
# modules, and modules that print or start something when imported.
SKIP = (
    "test",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "antigravity",
    "this",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc_data",
    "msvcrt",
    "winreg",
    "winsound",
    "_",
)
LIMIT = 6000
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")
OUT = Path(__file__).with_name("corpus.jsonl.gz")


def clean(text: str) -> str:
    return " ".join(text.split())


def keep(text: str) -> bool:
    letters = sum(c.isalpha() for c in text)
    return 30 <= len(text) <= 320 and letters >= 0.6 * len(text) and " " in text


def reference() -> list[tuple[str, str]]:
    """Sentences of the language reference's prose paragraphs (code blocks left out)."""
    out = []
    for topic in sorted(pydoc_data.topics.topics):
        for block in pydoc_data.topics.topics[topic].split("\n\n"):
            if block.startswith((" ", "*", "=", "-")) or "::=" in block:
                continue
            for sentence in SENTENCE.split(clean(block)):
                if keep(sentence):
                    out.append((f"reference/{topic}", sentence))
    return out


def library() -> list[tuple[str, str]]:
    """Sentences of the docstrings (prose paragraphs) of public functions, classes and
    methods of the standard library's modules."""
    out = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith(SKIP):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for sentence in SENTENCE.split(clean(inspect.getdoc(module) or "")):
            if keep(sentence):
                out.append((f"library/{name}", sentence))
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            members: list[object] = [obj]
            if inspect.isclass(obj):
                members += [
                    member
                    for key, member in sorted(vars(obj).items())
                    if not key.startswith("_") and inspect.isfunction(member)
                ]
            for member in members:
                doc = inspect.getdoc(member) or ""
                paragraphs = [p for p in doc.split("\n\n") if not p.startswith((" ", ">>>"))]
                for sentence in SENTENCE.split(clean(" ".join(paragraphs))):
                    if keep(sentence):
                        out.append((f"library/{name}", sentence))
    return out


def main() -> None:
    seen: set[str] = set()
    rows = []
    for segment, text in reference() + library():
        if text.lower() not in seen:
            seen.add(text.lower())
            rows.append((segment.split("/")[0], segment, text))
    random.Random(12).shuffle(rows)
    rows = rows[:LIMIT]
    lines = [
        json.dumps({"id": f"t{i:05d}", "segment": seg, "source": src, "text": text}) + "\n"
        for i, (seg, src, text) in enumerate(rows)
    ]
    # mtime=0 keeps the compressed bytes the same from one run to the next
    OUT.write_bytes(gzip.compress("".join(lines).encode("utf-8"), mtime=0))
    print(f"{len(rows)} texts -> {OUT}")  # noqa: T201


if __name__ == "__main__":
    main()
