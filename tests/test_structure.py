"""The package's shape: imports go one way.

A module may refer upwards only in an annotation (``if TYPE_CHECKING:``), which never
runs: ``request.app`` is typed as the ``App`` that imports ``request``. Any import that
runs, at the top of a module or inside a function, follows the layers downwards.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trioweb

PACKAGE = Path(trioweb.__file__).parent


def _runtime_imports(path: Path) -> set[str]:
    """The trioweb modules that ``path`` imports when it runs (not for type checking)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.If)
                and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING"
            ):
                for inner in child.orelse:
                    visit(inner)
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 1:
                if child.module:
                    found.add(child.module.split(".")[0])
                else:
                    found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_no_import_cycle_among_the_modules() -> None:
    graph = {path.stem: _runtime_imports(path) for path in PACKAGE.glob("*.py")}
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in graph.get(module, ()):
            walk(imported, [*path, module])
        done.add(module)

    for module in graph:
        walk(module, [])
    assert "_connection" in graph and "_engine" in graph  # the walk saw the package


def test_no_test_module_imports_another() -> None:
    # Shared test code lives in the underscored modules (_helpers, _corpus, _nginx).
    tests = Path(__file__).parent
    importers = {
        path.name
        for path in tests.glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            name.startswith("test_")
            for name in (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
            )
        )
    }
    assert importers == set()
