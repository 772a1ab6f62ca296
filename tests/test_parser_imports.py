"""Only the engine modules import the HTTP parsers (issue 11): everything else in trioweb
talks to the engine interface, so either parser can sit behind it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trioweb

PACKAGE = Path(trioweb.__file__).parent
#: The one module allowed to import each parser (the engines may not exist yet).
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


# These still import h11 until the engine branch of issue 11 lands. The xfail is strict:
# once one of them stops importing h11, its test fails until its name is taken out here.
STILL_ON_H11 = {"_connection.py"}


def test_every_module_is_checked() -> None:
    assert "testing.py" in {path.name for path in MODULES}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            path.relative_to(PACKAGE).as_posix(),
            marks=[pytest.mark.xfail(strict=True, reason="engine branch pending")]
            if path.name in STILL_ON_H11
            else [],
        )
        for path in MODULES
    ],
)
def test_only_the_engines_import_the_parsers(name: str) -> None:
    parsers = imported_roots(PACKAGE / name) & PARSERS.keys()
    assert {parser for parser in parsers if PARSERS[parser] != name} == set()
