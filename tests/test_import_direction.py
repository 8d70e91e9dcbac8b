"""The import direction of the design, checked on the source: the flow is mirror → judge →
dashboards, and an import against it (or a cycle) fails here before it ships.

Every `import` and `from … import` is read with `ast`, at any depth (a lazy import inside a
function counts as much as one at the top), and resolved to the module it names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mirror", "judge", "dashboards", "simulation")

# (importer prefix, forbidden prefix, why). A prefix matches the module and its submodules.
RULES: tuple[tuple[str, str, str], ...] = (
    ("mirror", "judge", "mirror is upstream of the judge"),
    ("mirror", "dashboards", "mirror is upstream of the dashboards"),
    ("judge", "dashboards", "the judge is upstream of the dashboards"),
    ("mirror.sidecar", "mirror.runner", "the live path knows nothing of the runner"),
    ("mirror.runner", "mirror.sidecar", "the runner reads the bus, not the live path"),
    ("mirror.answers", "mirror.sidecar", "answers are read the same for both"),
    ("mirror.answers", "mirror.runner", "answers are read the same for both"),
    ("mirror.answers", "mirror.bus", "reading an answer needs no bus"),
    ("mirror.bus", "mirror.sidecar", "the bus carries events, it does not make them"),
    ("mirror.bus", "mirror.runner", "the bus carries events, it does not make them"),
    ("mirror.bus", "mirror.answers", "the bus carries events, it does not make them"),
    ("mirror.bus", "mirror.translate", "the bus carries events, it does not make them"),
    ("mirror.answers", "mirror.translate", "answers are read as the provider gave them"),
    ("mirror.translate", "mirror.sidecar", "translation is shared by the live path and the runner"),
    ("mirror.translate", "mirror.runner", "translation is shared by the live path and the runner"),
    ("mirror.translate", "mirror.bus", "translating a call needs no bus"),
    ("judge.scorers", "judge.store", "scorers are pure: no store"),
    ("judge.scorers", "judge.worker", "scorers are pure: no worker"),
    ("judge.scorers", "mirror.bus", "scorers are pure: no bus"),
    ("judge.store", "judge.scorers", "the store writes what it is given"),
    # The simulation stands apart: only the composition root wires it in (`shadowjudge demo`).
    ("simulation", "mirror", "a simulated provider knows nothing of what it is tested with"),
    ("simulation", "judge", "a simulated provider knows nothing of what it is tested with"),
    ("simulation", "dashboards", "a simulated provider knows nothing of what it is tested with"),
    ("mirror", "simulation", "nothing on a real path runs simulated parts"),
    ("judge", "simulation", "nothing on a real path runs simulated parts"),
    ("dashboards.analysis", "simulation", "nothing on a real path runs simulated parts"),
    ("dashboards.review", "simulation", "nothing on a real path runs simulated parts"),
    ("dashboards.triggers", "simulation", "nothing on a real path runs simulated parts"),
    ("dashboards.web", "simulation", "nothing on a real path runs simulated parts"),
)
# The contract every role shares imports none of the rooms.
CONTRACT = (
    "mirror.events",
    "mirror.errors",
    "mirror.config",
    "mirror.pricing",
    "mirror.fit",
    "mirror.rollout",
    "mirror.migrations",
    "mirror.sampling",
)
ROOMS = ("mirror.bus", "mirror.answers", "mirror.translate", "mirror.sidecar", "mirror.runner")
COMPOSITION_ROOT = "dashboards.command"


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[Edge]:
    """Each import of a project module in `path`, resolved to the deepest known module."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` names a module; `from module import thing` does not.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield Edge(name, target, node.lineno)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    found = modules(root)
    known = set(found)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for edge in imports(name, path, known):
            graph[name].add(edge.imported)
            where = f"{found[name].relative_to(root)}:{edge.line}"
            for importer, forbidden, why in RULES:
                if within(name, importer) and within(edge.imported, forbidden):
                    problems.append(f"{where}: {name} imports {edge.imported} ({why})")
            if name in CONTRACT and any(within(edge.imported, room) for room in ROOMS):
                problems.append(f"{where}: {name} is the shared contract, imports a room")
            if within(edge.imported, COMPOSITION_ROOT) and not within(name, COMPOSITION_ROOT):
                problems.append(f"{where}: {name} imports the composition root")
    problems.extend(f"import cycle: {' → '.join(cycle)}" for cycle in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_tree_follows_the_import_direction() -> None:
    assert violations(ROOT) == []


def test_every_room_says_what_it_is() -> None:
    for init in sorted(p for package in PACKAGES for p in (ROOT / package).rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(ROOT)} has no docstring"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text('"""x"""\n')
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            init = tmp_path / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text('"""x"""\n')
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"mirror/a.py": "from judge.b import x\n", "judge/b.py": ""}, "mirror.a imports judge.b"),
        (
            {"mirror/a.py": "def f():\n    import dashboards.c\n", "dashboards/c.py": ""},
            "mirror.a imports dashboards.c",
        ),
        ({"judge/a.py": "from dashboards import c\n", "dashboards/c.py": ""}, "judge.a imports"),
        (
            {"mirror/sidecar/p.py": "from mirror.runner.w import R\n", "mirror/runner/w.py": ""},
            "mirror.sidecar.p imports mirror.runner.w",
        ),
        (
            {"mirror/sidecar/p.py": "from ..runner import w\n", "mirror/runner/w.py": ""},
            "mirror.sidecar.p imports mirror.runner.w",
        ),
        (
            {"mirror/translate/r.py": "from mirror.sidecar import p\n", "mirror/sidecar/p.py": ""},
            "mirror.translate.r imports mirror.sidecar.p",
        ),
        (
            {"mirror/translate/r.py": "from mirror.runner.w import W\n", "mirror/runner/w.py": ""},
            "mirror.translate.r imports mirror.runner.w",
        ),
        (
            {"mirror/events.py": "from mirror.bus.base import B\n", "mirror/bus/base.py": ""},
            "mirror.events is the shared contract",
        ),
        (
            {"judge/w.py": "import dashboards.command.main\n", "dashboards/command/main.py": ""},
            "imports the composition root",
        ),
        (
            {"mirror/a.py": "import mirror.b\n", "mirror/b.py": "from mirror import a\n"},
            "import cycle: mirror.a → mirror.b",
        ),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert any(expected in problem for problem in found), found


def test_allowed_imports_pass(tmp_path: Path) -> None:
    files = {
        "dashboards/command/main.py": "import judge.w\nimport mirror.sidecar.p\n",
        "judge/w.py": "from mirror.events import E\n",
        "mirror/events.py": "",
        "mirror/sidecar/p.py": "from mirror.answers import n\n",
        "mirror/answers/n.py": "from mirror import events\n",
        "mirror/translate/r.py": "from mirror.answers import n\nfrom mirror.events import E\n",
        "mirror/runner/w.py": "from mirror.translate import r\n",
    }
    assert violations(_tree(tmp_path, files)) == []
