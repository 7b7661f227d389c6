"""The layout of `streams/` shows the design: no import cycles, between modules or between
packages, and `scoring/` free of Faust and Kafka.

Imports are read from the source (every `import` statement, in functions too, except
those under `if TYPE_CHECKING:`, which only the type checker follows).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> Iterator[str]:
    """The names `path` imports, at run time."""

    def visit(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from visit(other)
                continue
            if isinstance(child, ast.Import):
                yield from (alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                yield child.module
                yield from (f"{child.module}.{alias.name}" for alias in child.names)
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(), str(path)))


def _graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports."""
    modules = _modules(package)
    return {
        name: {imported for imported in _imports(path) if imported in modules} - {name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if found := visit(target):
                return found
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if found := visit(node):
            return found
    return None


def _unit(module: str) -> str:
    """A module's package under `streams` (`streams.kafka`), or the module itself when it
    sits at the top (`streams.app`)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(_unit(module), set()).update(
            _unit(target) for target in targets if _unit(target) != _unit(module)
        )
    units.pop("streams", None)  # the package's own __init__
    return units


def test_no_module_imports_itself_through_others() -> None:
    cycle = _cycle(_graph("streams"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_no_package_cycle() -> None:
    cycle = _cycle(_package_graph(_graph("streams")))
    assert cycle is None, "packages importing each other: " + " -> ".join(cycle or ())


def test_only_the_composition_root_wires_the_parts() -> None:
    """The parts (`processing`, `web`, `sinks`) are given the app; none imports the root."""
    graph = _graph("streams")
    importers = sorted(m for m, targets in graph.items() if "streams.app" in targets)
    assert importers == ["streams.cli.main", "streams.dev.mode"], importers


def test_scoring_is_pure() -> None:
    impure = {
        f"{module} imports {name}"
        for module, path in _modules("scoring").items()
        for name in _imports(path)
        if name.split(".")[0] in {"faust", "aiokafka", "kafka", "streams", "mode", "rocksdict"}
    }
    assert not impure, sorted(impure)


def test_the_checks_find_what_they_look_for() -> None:
    """The cycle finder finds a cycle, and the import reader sees imports in functions
    but not those only the type checker follows."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    store = ROOT / "streams" / "state" / "store.py"
    cli = ROOT / "streams" / "cli" / "main.py"
    assert "streams.app" in set(_imports(cli))  # in a function
    imported = set(_imports(store))
    assert "streams.context" not in imported  # under TYPE_CHECKING
