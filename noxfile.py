"""Development tasks: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` the benchmark.

Sessions run on the Python that runs nox, and reuse their virtualenvs (``nox -R`` also
skips reinstalling). Arguments after ``--`` go to pytest or to the benchmark script.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

LINT_PATHS = ["trioweb", "tests", "examples", "bench", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite: ``nox -s tests -- -k stream -x``."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff's linter and formatter check (ruff pinned by the dev extra)."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy in strict mode (the test extra is installed: trioweb.testing imports httpx)."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "trioweb")


@nox.session
def bench(session: nox.Session) -> None:
    """Hello-world benchmark against a bare Trio + h11 server; needs wrk (see bench/README.md)."""
    session.install(".")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def bench_stream(session: nox.Session) -> None:
    """Streaming benchmark against Sanic, with real clients (see bench/README.md)."""
    # Only here, never dependencies of trioweb: sanic (which brings httptools, for
    # trioweb's httptools engine too), and the clients httpx and aiohttp; curl is Debian's.
    session.install(".", "sanic", "httpx", "aiohttp")
    session.run("python", "bench/stream.py", *session.posargs)


@nox.session
def bench_files(session: nox.Session) -> None:
    """File-download benchmark against Sanic and nginx (nginx from apt: see bench/README.md)."""
    session.install(".", "sanic")  # sanic only here: never a dependency of trioweb
    session.run("python", "bench/files.py", *session.posargs)


#: Peers for ``bench_peers``, installed into that session only: never dependencies.
#: httptools is uvicorn's too (its ``http="httptools"``), not only trioweb's ``speed``.
PEERS = ["sanic", "starlette", "uvicorn", "uvloop", "httptools", "hypercorn", "quart-trio"]


@nox.session
def bench_peers(session: nox.Session) -> None:
    """trioweb (both engines) against Sanic, Starlette, uvicorn, Hypercorn, Quart-Trio and a
    bare Trio + h11 loop; rewrites docs/benchmarks.md and its chart (bench/README.md)."""
    session.install(".[speed]", *PEERS, "matplotlib")  # matplotlib: the chart, here only
    session.run("python", "bench/peers.py", "--docs", *session.posargs)


#: Peers for ``bench_upload``, in that session only: Starlette's forms need python-multipart.
UPLOAD_PEERS = ["starlette", "python-multipart", "uvicorn", "uvloop", "sanic"]


@nox.session
def bench_upload(session: nox.Session) -> None:
    """A multipart upload saved to disk: trioweb against Starlette and Sanic (bench/README.md)."""
    session.install(".[speed]", *UPLOAD_PEERS)
    session.run("python", "bench/upload.py", *session.posargs)


#: Peers for ``bench_ws``, installed into that session only: never dependencies.
WS_PEERS = ["sanic", "starlette", "uvicorn[standard]", "hypercorn[trio]"]


@nox.session
def bench_ws(session: nox.Session) -> None:
    """WebSockets: trioweb against Sanic, Starlette on uvicorn and on Hypercorn's trio
    worker (echo, a 1 GiB stream, idle connections, a stalled client; bench/README.md)."""
    session.install(".", *WS_PEERS)
    session.run("python", "bench/ws.py", *session.posargs)


@nox.session
def bench_slow(session: nox.Session) -> None:
    """wrk's p99 latency alone and under slowhttptest's slow-client attacks (bench/README.md)."""
    session.install(".")
    session.run("python", "bench/slow.py", *session.posargs)


@nox.session
def bench_shutdown(session: nox.Session) -> None:
    """SIGTERM under load: no request the server had started is lost (bench/README.md)."""
    session.install(".")
    session.run("python", "bench/shutdown.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The fuzz tests with many more examples: ``nox -s fuzz -- -x``."""
    session.install("-e", ".[test]")
    env = {"HYPOTHESIS_PROFILE": "fuzz"}  # see tests/conftest.py
    files = ["tests/test_fuzz.py", "tests/test_fuzz_multipart.py", "tests/test_engine_fuzz.py"]
    session.run("pytest", *files, *session.posargs, env=env)
