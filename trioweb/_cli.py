"""The command line: ``trioweb module:app --host H --port P [--workers N] [--http E]``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ._app import App
from ._server import engine_class

__all__ = ["main"]


def _load(target: str) -> App:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"trioweb: expected module:app, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"trioweb: cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise SystemExit(f"trioweb: {target!r} is not a trioweb.App")
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the command line."""
    parser = argparse.ArgumentParser(prog="trioweb", description="Serve a trioweb app.")
    parser.add_argument("app", help="the application, as module.path:attribute")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default=None,
        help="HTTP engine (default: the app's HTTP_ENGINE, 'auto': httptools if installed)",
    )
    args = parser.parse_args(argv)
    app = _load(args.app)
    if args.http is not None:
        app.config.HTTP_ENGINE = args.http
    try:
        engine_class(app.config.HTTP_ENGINE)  # a missing engine: one line, not a traceback
    except (ValueError, RuntimeError) as exc:
        raise SystemExit(f"trioweb: {exc}") from None
    app.run(host=args.host, port=args.port, workers=args.workers)
