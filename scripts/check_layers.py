"""Check medbench's import layering: stages import only earlier stages, through their faces.

The package's folders are the pipeline's stages (see CONTRIBUTING.md, "Where things live").
This walks the AST of every module (imports inside functions included; imports only for type
checkers excluded, since they never run) and fails when

1. a module imports a module of a later stage (or of a sibling stage: `checkpoints` and
   `checks` are independent);
2. a module of one stage imports a module of another stage instead of a package's face (its
   `__init__.py`, which names what other stages may use: `medbench.run`, or a sub-package such
   as `medbench.score.metrics` or the heavy `medbench.run.backends.hf`, imported lazily);
3. a command module imports another command's module (the shared `commands/options.py` aside);
4. modules import each other in a circle (type-checking imports count here: a circle of
   annotations is still two modules that cannot be read apart).

Usage: python scripts/check_layers.py [PACKAGE_DIR]   (exit 1 with one line per problem).
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

# The stages, in the order the data flows. A stage may import its own and every earlier one.
# Entries of one tuple are siblings: neither imports the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "home", "atomic"),
    ("spec",),
    ("data",),
    ("run",),
    ("score",),
    ("publish",),
    ("checkpoints", "checks"),
    ("commands",),
    ("cli",),
    ("__main__",),
)
SHARED_OPTIONS = "medbench.commands.options"
LIBRARY = ("spec", "data", "run", "score", "publish", "checkpoints", "checks")
"""The stages whose packages have faces: other stages import from a package, not a module."""


def _rank() -> dict[str, tuple[int, str]]:
    return {name: (level, name) for level, names in enumerate(LAYERS) for name in names}


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    names: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, typing: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs (and, with `typing`, those for type checkers only)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not typing and isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(
    name: str, path: Path, known: dict[str, Path], *, typing: bool = False
) -> Iterator[tuple[str, int]]:
    """(module, line) for each medbench module that `name` imports."""

    def resolve(dotted: str) -> str | None:
        package, _, attribute = dotted.rpartition(".")
        if package in known and attribute in _bound(known[package]):
            return package  # a name the package's face binds, not its submodule
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = _tree(path)
    for node in _imports(tree, typing):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.split(".")[0] != "medbench":
                continue
            resolved = resolve(target)
            if resolved is not None and resolved != name:
                yield resolved, node.lineno


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once however often it is asked about."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@functools.cache
def _bound(path: Path) -> frozenset[str]:
    """Names a module binds at its top level (imports, definitions, assignments)."""
    names: set[str] = set()
    for node in _tree(path).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return frozenset(names)


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def problems(package: Path) -> list[str]:
    """Every layering problem of the package at `package`, one line each."""
    known = module_names(package)
    rank = _rank()
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        where = path.relative_to(package.parent)
        stage = stage_of(name)
        graph[name] = {t for t, _ in imported_modules(name, path, known, typing=True)}
        for target, line in sorted(set(imported_modules(name, path, known))):
            other = stage_of(target)
            if stage is None or other is None or stage == other:
                continue
            if stage not in rank or other not in rank:
                found.append(f"{where}:{line}: {name} or {target} is in no stage of LAYERS")
                continue
            (mine, _), (theirs, _) = rank[stage], rank[other]
            if theirs > mine or (theirs == mine and stage != other):
                found.append(f"{where}:{line}: {name} ({stage}) imports a later stage: {target}")
            elif other in LIBRARY and known[target].name != "__init__.py":
                face = target.rpartition(".")[0]
                found.append(
                    f"{where}:{line}: {name} imports {target}, a module of the {other} stage: "
                    f"import what it needs from the face, {face}"
                )
        if stage == "commands" and name not in ("medbench.commands", SHARED_OPTIONS):
            for target in sorted(graph[name]):
                if (
                    stage_of(target) == "commands"
                    and target not in ("medbench.commands", SHARED_OPTIONS)
                    and target != name
                ):
                    found.append(f"{where}: command {name} imports another command: {target}")
    found.extend(_circles(graph))
    return found


def _circles(graph: dict[str, set[str]]) -> list[str]:
    """One line per import circle (a strongly connected set of modules), Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[str] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                members.append(top)
                if top == node:
                    break
            if len(members) > 1:
                circles.append("import circle: " + " <-> ".join(sorted(members)))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def main(argv: list[str]) -> int:
    package = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "medbench"
    found = problems(package)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} layering problem(s) in {package}", file=sys.stderr)
        return 1
    print(f"layers ok: {len(module_names(package))} modules in {package}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
