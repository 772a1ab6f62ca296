"""Only the engine modules import the HTTP parsers (issue 11): everything else in trioweb
talks to the engine interface, so either parser can sit behind it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trioweb

PACKAGE = Path(trioweb.__file__).parent
#: The one module allowed to import each parser.
PARSERS = {"h11": "_h11_engine.py", "httptools": "_httptools_engine.py"}
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every module that ``path`` imports, anywhere in it."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


def test_imported_roots_sees_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import h11.x as a, os\n"
        "from httptools.parser import errors\n"
        "from . import h11\n"  # the package's own module of that name: not the parser
        "def f():\n"
        "    import zlib\n"
    )
    assert imported_roots(module) == {"h11", "os", "httptools", "zlib"}


def test_every_module_is_checked() -> None:
    names = {path.name for path in MODULES}
    assert {"testing.py", *PARSERS.values()} <= names


@pytest.mark.parametrize("name", [path.relative_to(PACKAGE).as_posix() for path in MODULES])
def test_only_the_engines_import_the_parsers(name: str) -> None:
    parsers = imported_roots(PACKAGE / name) & PARSERS.keys()
    assert {parser for parser in parsers if PARSERS[parser] != name} == set()
