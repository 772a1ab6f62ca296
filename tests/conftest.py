"""Fixtures and settings shared by the whole suite.

``transport``: a test that asks for it runs twice, over the in-memory pipe of the
TestClient and over a real loopback socket (see ``serving`` in ``_helpers.py``).

``http_engine``: the protocol tests run once per HTTP engine (h11 and httptools), as
uvicorn's run once per ``http_protocol_cls``; the engine is the default of
``Config.HTTP_ENGINE`` for the duration of a test, so every app a test builds uses it.

The Hypothesis profiles: ``HYPOTHESIS_PROFILE`` picks one. The default, ``ci``, is
derandomized: the same examples every run, so a CI run fails only for a change to the
code, never for a new draw. ``fuzz`` (``nox -s fuzz``) explores at random, with many
more examples. Failing examples are saved in ``.hypothesis/`` (git-ignored by
Hypothesis itself), and the next run tries them first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from _helpers import TRANSPORTS
from hypothesis import settings

from trioweb import Config

settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True, derandomize=True)
settings.register_profile("fuzz", max_examples=20_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ENGINES = ["h11", "httptools"]

# The modules whose tests serve requests in-process: each of their tests runs with
# each engine. (Subprocess tests, docs and pure unit tests run once, with "auto".)
_PER_ENGINE = {
    "test_app",
    "test_body_streams",
    "test_cancelled_send",
    "test_chunked",
    "test_cookies",
    "test_end_to_end",
    "test_files",
    "test_forms",
    "test_fuzz",
    "test_headers",
    "test_leaks",
    "test_limits",
    "test_linger",
    "test_logs",
    "test_paths",
    "test_protocol",
    "test_request_response",
    "test_response_stream",
    "test_review",
    "test_static",
    "test_stream_timeouts",
    "test_streaming",
    "test_strict",
    "test_testing",
    "test_timeouts",
    "test_tls",
    "test_websocket",
    "test_websocket_protocol",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__ in _PER_ENGINE and "http_engine" in metafunc.fixturenames:
        metafunc.parametrize("http_engine", ENGINES, indirect=True)


@pytest.fixture(autouse=True)
def http_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The HTTP engine this test's servers use."""
    engine: str = getattr(request, "param", "auto")
    previous = Config.HTTP_ENGINE
    Config.HTTP_ENGINE = engine
    try:
        yield engine
    finally:
        Config.HTTP_ENGINE = previous


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """``"memory"`` or ``"tcp"``: how this test's client reaches its server."""
    return str(request.param)
