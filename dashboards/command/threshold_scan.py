"""Similarity cut-offs hard-coded in a code base, found with Python's `ast`.

A cut-off is a float literal compared with, or given as, something named like a similarity
or a distance score:

- comparisons: `score > 0.75`, `hit["similarity"] >= 0.8`, `0.3 > doc.distance`,
  `cosine_similarity(a, b) < 0.5` (`<`, `<=`, `>`, `>=`; chained comparisons too);
- keyword arguments: `threshold=0.75`, `min_score=0.5`, `score_threshold=0.7`,
  `similarity_cutoff=0.8`, `max_distance=0.3`;
- assignments, function defaults and string-keyed dict entries with such a name:
  `SIMILARITY_THRESHOLD = 0.8`, `def search(q, min_score=0.7)`, `{"score_threshold": 0.7}`.

Names are split into words (`minScore`, `min_score` -> min, score). A name is a score when it
has a similarity word (score, similarity, sim, cosine, cos, relevance) or a distance word
(distance, dist); a name of a setting counts when it also has a threshold word (threshold,
cutoff, min, max, floor), or is `threshold` / `cutoff` alone (taken as a similarity: say so in
review). Literals: floats in [-1, 1] for similarities, in (0, 2] for distances; integers are
left out (`score > 0` is a sign check, not a tuned threshold). Files that do not parse are
reported, not skipped silently.

Other languages (`OTHER_LANGUAGES`: JavaScript/TypeScript, Go, Java, Kotlin, Ruby, Rust, C#,
PHP) get a fallback: regular expressions over each line for the same comparisons and
`name = value` / `name: value` settings, with the same name rules. Without a parser it misses
what spans lines and may catch a literal in a string or a comment. What it cannot see — a value
read from a settings file or an environment variable — it does not guess: it lists candidates
for a person to review, with file and line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["similarity", "distance"]

SIMILARITY_WORDS = frozenset(
    {"score", "scores", "similarity", "similarities", "sim", "sims", "cosine", "cos"}
    | {"relevance", "relevancy"}
)
DISTANCE_WORDS = frozenset({"distance", "distances", "dist", "dists"})
THRESHOLD_WORDS = frozenset(
    {"threshold", "thresholds", "cutoff", "cut", "min", "max", "minimum", "maximum", "floor"}
)
SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".tox"}
    | {"vendor", "dist", "build", "target"}
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@dataclass(frozen=True, slots=True)
class Cutoff:
    """One hard-coded cut-off: where, its value, what it cuts, and the code around it."""

    path: Path
    line: int
    value: float
    kind: Kind
    code: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Unreadable:
    path: Path
    reason: str


def words(name: str) -> set[str]:
    return {word.lower() for word in _WORD.findall(name)}


def score_kind(name: str) -> Kind | None:
    """`distance` or `similarity` when `name` names a score, else None."""
    found = words(name)
    if found & DISTANCE_WORDS:
        return "distance"
    if found & SIMILARITY_WORDS:
        return "similarity"
    return None


def setting_kind(name: str) -> Kind | None:
    """The kind of a setting named `name` holding a cut-off (`min_score`, `threshold`)."""
    found = words(name)
    if found in ({"threshold"}, {"cutoff"}):
        return "similarity"
    if not found & THRESHOLD_WORDS:
        return None
    return score_kind(name)


def _names(node: ast.expr) -> Iterator[str]:
    """The names an expression is known by: `hit.score` -> score, `r["sim"]` -> sim, r."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            yield node.slice.value
        yield from _names(node.value)
    elif isinstance(node, ast.Call):
        yield from _names(node.func)
    elif isinstance(node, ast.UnaryOp | ast.BinOp):
        operand = node.operand if isinstance(node, ast.UnaryOp) else node.left
        yield from _names(operand)


def _literal(node: ast.expr) -> float | None:
    """A float literal (negative ones too), or None."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) is float:
        return sign * node.value
    return None


def _plausible(value: float, kind: Kind) -> bool:
    return -1.0 <= value <= 1.0 if kind == "similarity" else 0.0 < value <= 2.0


class _Finder(ast.NodeVisitor):
    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self.found: list[Cutoff] = []

    def _add(
        self,
        node: ast.AST,
        value: float | None,
        kind: Kind | None,
        code: str | None = None,
    ) -> None:
        if value is None or kind is None or not _plausible(value, kind):
            return
        if code is None:
            code = ast.get_source_segment(self.source, node) or ""
        line = getattr(node, "lineno", 0)
        self.found.append(Cutoff(self.path, line, value, kind, " ".join(code.split())[:120]))

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            if isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE):
                left, right = operands[index], operands[index + 1]
                for literal, other in ((left, right), (right, left)):
                    value = _literal(literal)
                    if value is not None:
                        kinds = [score_kind(name) for name in _names(other)]
                        self._add(node, value, next((k for k in kinds if k), None))
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None:
            self._add(node, _literal(node.value), setting_kind(node.arg))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(node, target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._target(node, node.target, node.value)
        self.generic_visit(node)

    def _target(self, node: ast.AST, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name | ast.Attribute):
            name = target.id if isinstance(target, ast.Name) else target.attr
            self._add(node, _literal(value), setting_kind(name))

    def visit_arguments(self, node: ast.arguments) -> None:
        positional = [*node.posonlyargs, *node.args]
        with_defaults = positional[len(positional) - len(node.defaults) :]
        pairs = list(zip(with_defaults, node.defaults, strict=True))
        pairs += [
            (a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d is not None
        ]
        for arg, default in pairs:
            code = f"{arg.arg}={ast.get_source_segment(self.source, default)}"
            self._add(arg, _literal(default), setting_kind(arg.arg), code)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                code = f"{key.value!r}: {ast.get_source_segment(self.source, value)}"
                self._add(key, _literal(value), setting_kind(key.value), code)
        self.generic_visit(node)


def scan_source(path: Path, source: str) -> list[Cutoff]:
    """The cut-offs in one Python source (SyntaxError when it does not parse)."""
    finder = _Finder(path, source)
    finder.visit(ast.parse(source, filename=str(path)))
    return sorted(finder.found, key=lambda c: c.line)


#: Scanned line by line with regular expressions (no parser): comparisons and `name = value` /
#: `name: value` settings with the same name rules as Python's.
OTHER_LANGUAGES = frozenset(
    {".js", ".jsx", ".mjs", ".ts", ".tsx", ".go", ".java", ".kt", ".rb", ".rs", ".cs", ".php"}
)
_NUMBER = r"(-?\d*\.\d+)"
_OPERAND = r"([A-Za-z_$][\w$.]*(?:\[[\"'][\w-]+[\"']\])?(?:\([^()]*\))?)"
_COMPARED = re.compile(rf"{_OPERAND}\s*(?:<=|>=|<|>)\s*{_NUMBER}(?![\w.])")
_COMPARED_REVERSED = re.compile(rf"(?<![\w.]){_NUMBER}\s*(?:<=|>=|<|>)\s*{_OPERAND}")
_SETTING = re.compile(rf"[\"']?([A-Za-z_$][\w$]*)[\"']?\s*(?::=|=|:)\s*{_NUMBER}(?![\w.])")


def scan_text(path: Path, source: str) -> list[Cutoff]:
    """The cut-offs in a source file of another language, by regular expression."""
    found: list[Cutoff] = []
    for number, line in enumerate(source.splitlines(), start=1):
        code = " ".join(line.split())[:120]
        hits: list[tuple[float, Kind | None]] = []
        for operand, value in _COMPARED.findall(line):
            hits.append((float(value), _operand_kind(operand)))
        for value, operand in _COMPARED_REVERSED.findall(line):
            hits.append((float(value), _operand_kind(operand)))
        for name, value in _SETTING.findall(line):
            hits.append((float(value), setting_kind(name)))
        for value, kind in hits:
            if kind is not None and _plausible(value, kind):
                found.append(Cutoff(path, number, value, kind, code))
    return found


def _operand_kind(operand: str) -> Kind | None:
    """The kind of the last name in `hit.score`, `r["distance"]`, `cosineSimilarity(a, b)`."""
    names = re.findall(r"[A-Za-z_$][\w$]*", operand.split("(", 1)[0])
    quoted = re.findall(r"[\"']([\w-]+)[\"']", operand)
    for name in [*quoted, *reversed(names)]:
        kind = score_kind(name)
        if kind is not None:
            return kind
    return None


def source_files(root: Path) -> Iterator[Path]:
    """Python files and those of `OTHER_LANGUAGES` under `root`, dependency folders left out."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.suffix != ".py" and path.suffix not in OTHER_LANGUAGES:
            continue
        if not SKIPPED_DIRS & set(path.relative_to(root).parts[:-1]) and path.is_file():
            yield path


def scan(root: Path) -> tuple[list[Cutoff], list[Unreadable]]:
    """Every cut-off under `root` (a file or a directory), and the files that could not be read."""
    found: list[Cutoff] = []
    unreadable: list[Unreadable] = []
    for path in source_files(root):
        try:
            source = path.read_text(encoding="utf-8")
            if path.suffix == ".py":
                found.extend(scan_source(path, source))
            else:
                found.extend(scan_text(path, source))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
            unreadable.append(Unreadable(path, f"{type(exc).__name__}: {exc}"))
    return found, unreadable
