"""Every Python block in README.md and docs/*.md runs, and every relative link resolves.

How to write a code block in the docs (read this before adding one):

- A ```python block is a whole program, module or test file: it imports what it uses.
  The test runs it as a fresh module named ``__main__``, with a new temporary directory
  as the working directory, so a block may write files. Then:

  - A block that serves (``trio.run(app.serve)``, ``app.run(...)``) serves on 127.0.0.1
    at a free port instead, runs its listeners, answers one ``GET /`` if the app has that
    route, and shuts down gracefully. Anything the block runs with ``trio.run`` has a
    deadline.
  - Every other ``App`` the block leaves at module level lives one server life in a
    ``TestClient``, and answers one ``GET /`` if it has that route.
  - If the block defines ``test_*`` functions, they run under pytest with pytest-trio's
    ``trio_mode = true`` (as docs/testing.md tells users to configure it), so async tests
    and the fixtures users are told about (``client`` from an ``app`` fixture,
    ``autojump_clock``, ``tmp_path``) work, and every one of them must pass.

- ``<!-- excerpt -->`` on the line right before the fence marks a block that is a piece
  of a larger program (routes of an app defined elsewhere, a signature, one call). Only
  this test skips it. Prefer a whole block: mark a block only when the imports and the
  app would drown what it shows.
- ``<!-- continues -->`` on the line right before the fence: the block is run after the
  previous ```python block of the same page, in the same module (and its tests run with
  that block's).
- A block whose first line is a comment naming a file (``# app.py``) is that file: it is
  written to the working directory before any block of its page runs, so that another
  block can ``import app``.
- Shell sessions and program output go in ```console, ```sh or plain ``` blocks.

Relative links (``[x](other.md#anchor)``) in the same pages must point to a file that
exists and, with ``#anchor``, to a heading of that page (GitHub's anchor rules).
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from _helpers import SERVER_DEADLINE, RawClient

from trioweb import App
from trioweb.errors import HTTPError
from trioweb.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXCERPT = "<!-- excerpt -->"
CONTINUES = "<!-- continues -->"
MARKERS = (EXCERPT, CONTINUES)

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^`\s]*)\s*$")
FILE_COMMENT = re.compile(r"#\s*(?P<name>[\w.-]+\.py)\b")


@dataclass(frozen=True)
class Block:
    """One fenced ```python block of a page."""

    page: Path
    #: 1-based line number of the opening fence.
    line: int
    #: The code, without the fence's indentation.
    code: str
    #: EXCERPT, CONTINUES or "" (the comment on the line before the fence).
    marker: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file this block is, when its first line names one (``# app.py``)."""
        match = FILE_COMMENT.match(self.code)
        return match["name"] if match else None


def fences(lines: list[str]) -> Iterator[tuple[str, str, int, int]]:
    """(language, indentation, opening index, closing index) of each fenced block."""
    opening: re.Match[str] | None = None
    start = 0
    for index, line in enumerate(lines):
        fence = FENCE.match(line)
        if fence is None:
            continue
        if opening is None:
            opening, start = fence, index
        elif not fence["lang"]:
            yield opening["lang"], opening["indent"], start, index
            opening = None


def prose(page: Path) -> list[tuple[int, str]]:
    """(index, line) of each line of the page outside fenced blocks."""
    lines = page.read_text().splitlines()
    fenced = {i for _, _, start, end in fences(lines) for i in range(start, end + 1)}
    return [(index, line) for index, line in enumerate(lines) if index not in fenced]


def read_blocks(page: Path) -> list[Block]:
    """The page's ```python blocks, in order."""
    lines = page.read_text().splitlines()
    blocks = []
    for lang, indent, start, end in fences(lines):
        if lang != "python":
            continue
        code = "\n".join(
            line[len(indent) :] if line.startswith(indent) else line
            for line in lines[start + 1 : end]
        )
        marker = lines[start - 1].strip() if start else ""
        blocks.append(Block(page, start + 1, code + "\n", marker if marker in MARKERS else ""))
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def chain(block: Block) -> list[Block]:
    """The block, after the blocks it continues."""
    blocks = [block]
    while blocks[0].marker == CONTINUES:
        page_blocks = [b for b in BLOCKS if b.page == block.page]
        index = page_blocks.index(blocks[0])
        assert index > 0, f"{blocks[0].id} continues, but is the page's first block"
        previous = page_blocks[index - 1]
        assert previous.marker != EXCERPT, f"{blocks[0].id} continues an excerpt"
        blocks.insert(0, previous)
    return blocks


def source(blocks: list[Block]) -> str:
    """The blocks as one module whose line numbers are those of their page."""
    lines = [""] * (blocks[-1].line + blocks[-1].code.count("\n"))
    for block in blocks:
        for offset, text in enumerate(block.code.splitlines()):
            lines[block.line + offset] = text
    return "\n".join(lines) + "\n"


# -- running a block -------------------------------------------------------------------


def has_root_route(app: App) -> bool:
    try:
        app.router.match("GET", "/")
    except HTTPError:
        return False
    return True


def check_root_answer(app: App, response: httpx.Response) -> None:
    assert response.status_code < 400, (
        f"{app!r}: GET / answered {response.status_code}: {response.text}"
    )


@contextmanager
def bounded_serving(
    monkeypatch: pytest.MonkeyPatch, *, bound_trio_run: bool
) -> Iterator[list[App]]:
    """Make the serving entry points return: a free port, one GET /, a graceful shutdown.

    With ``bound_trio_run``, whatever the block runs with ``trio.run`` gets a deadline
    (not under pytest-trio, whose tests may run on a virtual clock). Yields the apps that
    were served, so that they are not served again in memory.
    """
    served: list[App] = []
    real_serve = App.serve
    real_run = App.run
    real_trio_run = trio.run

    async def serve(
        self: App,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
        **options: Any,
    ) -> None:
        served.append(self)
        if task_status is not trio.TASK_STATUS_IGNORED:
            # nursery.start(app.serve, ...): the block owns the server and shuts it down.
            await real_serve(self, "127.0.0.1", 0, task_status=task_status, **options)
            return
        with trio.fail_after(SERVER_DEADLINE):
            async with trio.open_nursery() as nursery:
                server = await nursery.start(partial(real_serve, self, "127.0.0.1", 0, **options))
                try:
                    if has_root_route(self) and options.get("ssl") is None:
                        async with httpx.AsyncClient() as http:
                            response = await http.get(f"http://127.0.0.1:{server.port}/")
                        check_root_answer(self, response)
                finally:
                    server.shutdown()

    def run(self: App, *args: Any, **kwargs: Any) -> None:
        arguments = inspect.signature(real_run).bind(self, *args, **kwargs)
        arguments.arguments.pop("workers", None)  # one process: the test's
        real_run(*arguments.args, **arguments.kwargs)

    def bounded_trio_run(function: Callable[..., Any], *args: Any, **options: Any) -> Any:
        async def bounded() -> Any:
            with trio.fail_after(SERVER_DEADLINE):
                return await function(*args)

        return real_trio_run(bounded, **options)

    with monkeypatch.context() as patch:
        patch.setattr(App, "serve", serve)
        patch.setattr(App, "run", run)
        if bound_trio_run:
            patch.setattr(trio, "run", bounded_trio_run)
        yield served


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The working directory of a block, first on sys.path; its modules are forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").is_relative_to(tmp_path):
            del sys.modules[name]


def execute(blocks: list[Block], workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the blocks as one ``__main__`` module in ``workdir``; returns its namespace."""
    for block in BLOCKS:
        if block.page == blocks[0].page and block.file_name:
            (workdir / block.file_name).write_text(block.code)
    module = types.ModuleType("__main__")
    module.__file__ = str(workdir / "doc_block.py")
    code = compile(source(blocks), str(blocks[0].page), "exec")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "__main__", module)
        with bounded_serving(patch, bound_trio_run=True) as served:
            exec(code, module.__dict__)
    apps = [v for v in module.__dict__.values() if isinstance(v, App) and v not in served]
    trio.run(live_in_memory, apps)
    return module.__dict__


async def live_in_memory(apps: list[App]) -> None:
    """One server life in a TestClient for each app, with a GET / if it has that route."""
    with trio.fail_after(SERVER_DEADLINE):
        for app in apps:
            async with TestClient(app) as client:
                if has_root_route(app):
                    check_root_answer(app, await client.get("/"))


class Outcomes:
    """A plugin for a nested pytest run: how many tests passed, and what went wrong."""

    def __init__(self) -> None:
        self.passed = 0
        self.problems: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.problems.append(f"{report.nodeid}: collection failed")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed or report.skipped:
            self.problems.append(f"{report.nodeid}: {report.when} {report.outcome}")
        elif report.when == "call":
            self.passed += 1


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_block_runs(block: Block, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.marker == EXCERPT:
        pytest.skip("marked <!-- excerpt -->")
    blocks = chain(block)
    namespace = execute(blocks, workdir, monkeypatch)
    tests = [n for n, v in namespace.items() if n.startswith("test") and inspect.isfunction(v)]
    if not tests:
        return
    # The tests run as users run theirs: pytest with trio_mode, in the same directory.
    # (Its output, tracebacks included, shows with this test's when it fails.)
    (workdir / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    test_file = workdir / "test_doc_block.py"
    test_file.write_text(source(blocks))
    outcomes = Outcomes()
    with bounded_serving(monkeypatch, bound_trio_run=False):
        code = pytest.main([str(test_file), "-p", "no:cacheprovider"], plugins=[outcomes])
    assert (code, outcomes.problems, outcomes.passed) == (pytest.ExitCode.OK, [], len(tests))


def test_markers_sit_right_before_a_python_fence() -> None:
    misplaced = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for index, line in enumerate(lines):
            if re.match(r"\s*<!--\s*(excerpt|continues)\b", line):  # a marker, or a typo
                fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
                if line.strip() not in MARKERS or not (fence and fence["lang"] == "python"):
                    misplaced.append(f"{page.relative_to(ROOT)}:{index + 1}")
    assert misplaced == []


# -- the README's streaming demo, as curl -T sends it ----------------------------------


def echo_block(page: str) -> Block:
    return next(b for b in BLOCKS if b.page == ROOT / page and '"/echo"' in b.code)


@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_echo_demo_echoes_a_curl_upload(
    page: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``curl -T big.file .../echo`` sends PUT with ``Expect: 100-continue``."""
    namespace = execute(chain(echo_block(page)), workdir, monkeypatch)
    body = b"".join(b"line %d of big.file\n" % n for n in range(1000))
    head = (
        b"PUT /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )

    async def upload() -> None:
        async with TestClient(namespace["app"]) as client, client.raw() as stream:
            curl = RawClient(stream)
            await curl.send(head)
            assert (await curl.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
            await curl.send(body)
            response = await curl.read_response("PUT")
            assert (response.status, response.body) == (200, body)

    trio.run(upload)


# -- links -----------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose(page):
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if not heading:
            continue
        base = slug(heading[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(f"{base}-{count}" if count else base)
    return found


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for index, line in prose(page):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto: ...
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}:{index + 1}: {target}"
            if not linked.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{where} (no such heading)")
    assert broken == []
